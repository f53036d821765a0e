"""A generic face's depth over the model's crop: the depth prior of the canonical keypoints.

Unsupervised keypoints get their depth only from the head turns in the training clips, which are small (median
4° of yaw within a clip); the first bundled model pushed every depth to ±1 instead, and its pose edits tore the
face. A keypoint at crop position (u, v) therefore starts from the depth of the mean MediaPipe face
(``data/canonical_face.npz``) at that position, placed where the tracker's crop framing puts a frontal face,
and the network learns only a small residual (``ModelConfig.keypoint_depth = "template"``).

Coordinates are the model's: u, v in [-1, 1] over the crop (x right, y down), depth z into the screen in the
same units, zero at the face's centroid (so a head turn pivots about the middle of the face, as the pose
pseudo-labels do). Outside the face the nearest face-edge depth continues outwards (hair, ears and neck lie
behind the face surface).

``python -m mmfa_studio.face.depth PREPARED_DATA`` re-measures the framing constants below.
"""

from __future__ import annotations

import functools

import numpy as np

from .pose import canonical_face

# A frontal canonical face (unit inter-ocular distance) appears in a crop at σ·(x, y) + (u0, v0): the median
# over 80 frames of 40 prepared training clips (MediaPipe tracker, per-frame pose removed), fit RMS 0.019.
CROP_FACE_SCALE = 0.678
CROP_FACE_OFFSET = (-0.001, 0.057)


@functools.lru_cache(maxsize=4)
def face_depth_map(size: int) -> np.ndarray:
    """size×size float32 depth of the generic frontal face, sampled at the pixel centres of [-1, 1]²."""
    from scipy.interpolate import griddata

    points = canonical_face().points
    s, (u0, v0) = CROP_FACE_SCALE, CROP_FACE_OFFSET
    uv = points[:, :2] * s + (u0, v0)
    depth = (points[:, 2] - points[:, 2].mean()) * s
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    gu, gv = np.meshgrid(centres, centres)  # gu varies along columns (x), gv along rows (y)
    inside = griddata(uv, depth, (gu, gv), method="linear")
    outside = griddata(uv, depth, (gu, gv), method="nearest")
    return np.where(np.isnan(inside), outside, inside).astype(np.float32)


def face_template_points(max_abs_x: float = 0.45, every: int = 3) -> tuple[np.ndarray, tuple[float, float]]:
    """(N×3 points, (u0, v0)): the inner part of the mean face (|x| ≤ max_abs_x inter-ocular units: it stays
    visible under ±30° of yaw) in crop units, centred on the face's centroid, and where that centroid sits in a
    crop. Posing them with R and adding (u0, v0) gives where a frontal-framed face's points appear."""
    points = canonical_face().points
    centred = (points - points.mean(axis=0)) * CROP_FACE_SCALE
    inner = centred[np.abs(points[:, 0]) <= max_abs_x][::every]
    mean_xy = points.mean(axis=0)[:2] * CROP_FACE_SCALE
    return inner.astype(np.float32), (float(CROP_FACE_OFFSET[0] + mean_xy[0]), float(CROP_FACE_OFFSET[1] + mean_xy[1]))


def measure_crop_framing(prepared: str, clips: int = 40, seed: int = 0) -> tuple[float, float, float, float, int]:
    """(σ, u0, v0, fit RMS, frames used): where a frontal canonical face sits in ``prepare``'s crops."""
    import random

    from ..model.keypoints import rotation_matrix
    from ..train.prepared import load_index, read_frames
    from .tracker import MediaPipeTracker
    import torch

    index = load_index(prepared)
    canon = canonical_face().points
    tracker = MediaPipeTracker()
    rng = random.Random(seed)
    fits = []
    for clip in rng.sample(list(index.clips), min(clips, len(index.clips))):
        for frame in read_frames(index, clip, [0, clip.frames // 2]):
            faces = tracker.detect(frame)
            if not faces or faces[0].pose is None:
                continue
            face, size = faces[0], frame.shape[0]
            uv = face.landmarks[:, :2] / size * 2 - 1
            p = face.pose
            rotation = rotation_matrix(torch.tensor([p.yaw]), torch.tensor([p.pitch]), torch.tensor([p.roll]))[0]
            posed = canon @ rotation.double().numpy().T
            a = np.zeros((2 * len(uv), 3))
            a[0::2, 0], a[1::2, 0], a[0::2, 1], a[1::2, 2] = posed[:, 0], posed[:, 1], 1, 1
            sol, *_ = np.linalg.lstsq(a, uv.reshape(-1), rcond=None)
            fits.append((*sol, float(np.sqrt(np.mean((a @ sol - uv.reshape(-1)) ** 2)))))
    if not fits:
        raise ValueError(f"no face found in the sampled frames of {prepared}")
    med = np.median(np.array(fits), axis=0)
    return float(med[0]), float(med[1]), float(med[2]), float(med[3]), len(fits)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m mmfa_studio.face.depth PREPARED_DATA")
    sigma, u0, v0, rms, n = measure_crop_framing(sys.argv[1])
    print(f"CROP_FACE_SCALE = {sigma:.3f}\nCROP_FACE_OFFSET = ({u0:.3f}, {v0:.3f})\n# fit RMS {rms:.4f} over {n} frames")
