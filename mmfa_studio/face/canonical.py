"""Build ``data/canonical_face.npz``, the canonical frontal face shape that head pose is measured against.

    python -m mmfa_studio.face.canonical [PORTRAIT_FOLDER]   (default ../shared/data/portraits)

Each face's MediaPipe 3D mesh is frontalised by its own geometry (mirror symmetry → the left-right axis, the
mesh's best-fit plane → the forward axis), scaled to unit inter-ocular distance and averaged; mirror pairs are
then found on the mean and the shape made exactly symmetric. Finally the shape is tilted so that the median
pitch over the portraits is 0 (people in portraits face the camera on average). Only numbers derived from the
landmarks are stored, no image data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mmfa_studio.atomic import atomic_path

from .image import ImageError, load_image
from .pose import CANONICAL_PATH, CanonicalFace, euler_from_matrix, frontalising_rotation
from .tracker import MediaPipeTracker

# Well-known MediaPipe mirror pairs (person's left, person's right) to start from: eye corners, cheeks, brows,
# mouth corners, nose wings.
SEED_PAIRS = np.array([(263, 33), (362, 133), (454, 234), (356, 127), (300, 70), (334, 105), (291, 61),
                       (327, 98), (323, 93), (361, 132)])
SUBNASALE, LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 2, 263, 33


def _normalised(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    frontal = (points - points[:468].mean(axis=0)) @ rotation  # row vectors: R^T · p
    return frontal / np.linalg.norm(frontal[LEFT_EYE_OUTER] - frontal[RIGHT_EYE_OUTER])


def _mirror_pairs(shape: np.ndarray) -> np.ndarray:
    mirrored = shape * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(shape[:, None, :] - mirrored[None, :, :], axis=-1)
    nearest = d.argmin(axis=1)
    pairs = [(i, j) for i, j in enumerate(nearest)
             if i != j and nearest[j] == i and shape[i, 0] > 0 and d[i, j] < 0.05]
    return np.array(pairs, dtype=np.int64)


def build(shapes_3d: list[np.ndarray],
          shapes_2d: list[tuple[np.ndarray, tuple[int, int]]]) -> tuple[CanonicalFace, float, int]:
    """(canonical face, pitch tilt applied in degrees, number of faces) from 3D meshes and 2D landmark sets."""
    pairs = SEED_PAIRS
    mean = None
    for _ in range(3):
        frontal = []
        for pts in shapes_3d:
            rot = frontalising_rotation(pts, pairs)
            yaw, _pitch, _roll = euler_from_matrix(rot)
            if abs(yaw) < 25:  # MediaPipe's depth is most reliable on near-frontal faces
                frontal.append(_normalised(pts, rot))
        mean = np.median(np.stack(frontal), axis=0)
        pairs = _mirror_pairs(mean)
    left, right = pairs[:, 0], pairs[:, 1]
    sym = mean.copy()
    avg = (mean[left] + mean[right] * np.array([-1.0, 1.0, 1.0])) / 2
    sym[left], sym[right] = avg, avg * np.array([-1.0, 1.0, 1.0])
    paired = np.zeros(len(sym), bool)
    paired[left] = paired[right] = True
    sym[~paired, 0] = 0.0  # unpaired points lie on the midline
    rigid = np.where(sym[:468, 1] <= sym[SUBNASALE, 1])[0]
    # Pitch zero: tilt so the median pitch over the photos is 0.
    import cv2

    pitches = []
    for landmarks, shape in shapes_2d:
        h, w = shape
        cam = np.array([[max(h, w), 0, w / 2], [0, max(h, w), h / 2], [0, 0, 1]], dtype=np.float64)
        ok, rvec, _ = cv2.solvePnP(sym[rigid], landmarks[rigid], cam, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            pitches.append(euler_from_matrix(cv2.Rodrigues(rvec)[0])[1])
    p = np.radians(np.median(pitches))
    cp, sp = np.cos(p), np.sin(p)
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # the model's R_pitch
    tilted = sym @ r_pitch.T
    return CanonicalFace(tilted, rigid, pairs), float(np.degrees(p)), len(shapes_3d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[3] / "shared/data/portraits"))
    args = parser.parse_args(argv)
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if not files:
        print(f"no photos in {args.folder}", file=sys.stderr)
        return 2
    tracker = MediaPipeTracker(video=False, max_faces=1, with_pose=False)
    shapes_3d, shapes_2d = [], []
    for path in files:
        try:
            image = load_image(path)
        except ImageError:
            continue
        faces = tracker.detect(image)
        if faces and faces[0].landmarks_3d is not None and faces[0].size > 80:
            shapes_3d.append(faces[0].landmarks_3d)
            shapes_2d.append((faces[0].landmarks.astype(np.float64), image.shape[:2]))
    tracker.close()
    canon, pitch, n = build(shapes_3d, shapes_2d)
    CANONICAL_PATH.parent.mkdir(exist_ok=True)
    with atomic_path(CANONICAL_PATH) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, points=canon.points.astype(np.float32), rigid=canon.rigid.astype(np.int16),
                                pairs=canon.pairs.astype(np.int16))
    print(f"{CANONICAL_PATH}: {n} faces, {len(canon.pairs)} mirror pairs, {len(canon.rigid)} rigid points, "
          f"pitch zero moved by {pitch:+.1f}°")
    return 0


if __name__ == "__main__":
    sys.exit(main())
