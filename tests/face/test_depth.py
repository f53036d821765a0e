"""The generic face depth that canonical keypoints start from (``keypoint_depth = "template"``)."""

import numpy as np

from mmfa_studio.face.depth import CROP_FACE_OFFSET, CROP_FACE_SCALE, face_depth_map
from mmfa_studio.face.pose import canonical_face


def _at(depth: np.ndarray, u: float, v: float) -> float:
    size = depth.shape[0]
    col, row = int((u + 1) / 2 * size), int((v + 1) / 2 * size)
    return float(depth[row, col])


def test_the_nose_is_nearest_and_the_face_edges_farthest():
    depth = face_depth_map(64)
    assert depth.shape == (64, 64) and depth.dtype == np.float32 and np.isfinite(depth).all()
    points = canonical_face().points
    nose = points[np.argmin(points[:, 2])]  # the canonical face's nearest point is the nose tip
    u, v = nose[:2] * CROP_FACE_SCALE + CROP_FACE_OFFSET
    nose_depth = _at(depth, u, v)
    assert (nose_depth == min(_at(depth, uu, vv) for uu in np.linspace(-0.9, 0.9, 7)
                              for vv in np.linspace(-0.9, 0.9, 7))
            or nose_depth < -0.15)
    cheek_l, cheek_r = _at(depth, u - 0.45, v), _at(depth, u + 0.45, v)
    assert cheek_l > nose_depth + 0.2 and cheek_r > nose_depth + 0.2
    assert abs(cheek_l - cheek_r) < 0.05  # the mean face is mirror-symmetric
    assert abs(depth[:, :32].mean() - depth[:, 32:][:, ::-1].mean()) < 0.01


def test_the_crop_framing_constants_put_the_face_in_the_middle():
    assert 0.5 < CROP_FACE_SCALE < 0.9 and abs(CROP_FACE_OFFSET[0]) < 0.05 and 0 <= CROP_FACE_OFFSET[1] < 0.15
