"""Measure where ``prepare``'s crops put a frontal face: the constants of ``mmfa_studio/face/depth.py``.

    python -m mmfa_studio.train.framing PREPARED_DATA
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from ..face.pose import canonical_face
from ..face.tracker import MediaPipeTracker
from ..model.keypoints import rotation_matrix
from .prepared import load_index, read_frames


def measure_crop_framing(prepared: str, clips: int = 40, seed: int = 0) -> tuple[float, float, float, float, int]:
    """(σ, u0, v0, fit RMS, frames used): where a frontal canonical face sits in ``prepare``'s crops."""
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
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mmfa_studio.train.framing PREPARED_DATA")
    sigma, u0, v0, rms, n = measure_crop_framing(sys.argv[1])
    print(f"CROP_FACE_SCALE = {sigma:.3f}\nCROP_FACE_OFFSET = ({u0:.3f}, {v0:.3f})\n"
          f"# fit RMS {rms:.4f} over {n} frames")
