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

``python -m mmfa_studio.train.framing PREPARED_DATA`` re-measures the framing constants below.
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
