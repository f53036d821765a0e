"""Dense face anchors posed like the keypoints: x = s·R·(x_c + δ) + t on the tracker's mesh points.

The source's anchors (3D, model units) are taken back to the canonical frame with the source's own pose and posed
again with the target's, so a head turn moves them as one rigid 3D shape (the near cheek widens, the far one
narrows) and exactly as it moves the keypoints; a non-rigid shift o (the driver's mouth opening, a lid dropping)
is added in the image plane, which is δ = Rᵀ·(o, 0)/s in the composition.
"""

from __future__ import annotations

from torch import Tensor

from .blocks import full_precision
from .dense_motion import AnchorPoints
from .keypoints import rotation_matrix


def pose_anchors(anchors: Tensor, source_yaw: Tensor, source_pitch: Tensor, source_roll: Tensor,
                 source_translation: Tensor, source_scale: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor,
                 translation: Tensor, scale: Tensor, shift: Tensor | None = None) -> AnchorPoints:
    """Source anchors 1×N×3 (or B×N×3) and the source's pose (each B or 1; translation B×3) → :class:`AnchorPoints`
    for the target pose (B); ``shift`` B×N×2 moves the posed anchors in the image plane."""
    with full_precision(anchors):
        f = lambda t: t.float()
        r_s = rotation_matrix(f(source_yaw), f(source_pitch), f(source_roll))
        r_d = rotation_matrix(f(yaw), f(pitch), f(roll))
        # Row vectors: canonical c = R_sᵀ·(a − t_s)/s_s, posed x = s·R·c + t. The anchors' depth is already
        # relative to the head's centre, the pivot of a turn.
        a, t_s = f(anchors), f(source_translation)[:, None]
        offset = a - t_s * a.new_tensor([1.0, 1.0, 0.0])
        canonical = (offset @ r_s) / f(source_scale)[:, None, None]
        posed = (f(scale)[:, None, None] * (canonical @ r_d.transpose(1, 2))
                 + f(translation)[:, None] * a.new_tensor([1.0, 1.0, 0.0]))
        driving = posed[..., :2] if shift is None else posed[..., :2] + f(shift)
        b = driving.shape[0]
        return AnchorPoints(source=a[..., :2].expand(b, -1, -1), driving=driving)
