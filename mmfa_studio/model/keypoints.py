"""Head rotation and keypoint composition: x = s · R(yaw, pitch, roll) · (x_c + δ) + t.

Conventions (shared by the model, the face tracker and the app):

* Keypoints live in normalised image coordinates, the frame of ``torch.nn.functional.grid_sample``:
  x ∈ [-1, 1] to the image right, y ∈ [-1, 1] to the image bottom, z into the screen (away from the
  camera). This is a right-handed frame, the same as OpenCV's camera frame. The projection is
  orthographic: a keypoint's pixel position is its (x, y).
* Angles are in degrees. With the face looking at the camera, its nose tip sits at negative z.
  - positive **yaw** turns the face towards the image right (the nose moves to +x);
  - positive **pitch** tilts the face up (the nose moves to -y, up in the image);
  - positive **roll** turns the head clockwise as seen in the image (the top of the head moves to +x).
* Order: R = R_roll · R_yaw · R_pitch, i.e. pitch is applied first, then yaw, then roll.
* Scale s is a positive factor (1 = the canonical size), translation t = (tx, ty, tz) is in the same
  normalised units as x (tx = 0.1 moves the face 5 % of the image width to the right).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _axis_rotations(yaw: Tensor, pitch: Tensor, roll: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Three B×3×3 rotation matrices for angles given in degrees (each of shape B)."""
    y, p, r = (torch.deg2rad(a) for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    cy, sy, cp, sp, cr, sr = y.cos(), y.sin(), p.cos(), p.sin(), r.cos(), r.sin()
    # yaw: rotation about the vertical axis by -yaw, so that the nose (0, 0, -1) goes to +x.
    r_yaw = torch.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).view(-1, 3, 3)
    # pitch: rotation about the horizontal axis by -pitch, so that the nose goes to -y.
    r_pitch = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).view(-1, 3, 3)
    # roll: rotation about the viewing axis; with y pointing down it looks clockwise on screen.
    r_roll = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return r_yaw, r_pitch, r_roll


def rotation_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """R = R_roll · R_yaw · R_pitch for angles in degrees, each of shape B; returns B×3×3."""
    r_yaw, r_pitch, r_roll = _axis_rotations(yaw, pitch, roll)
    return r_roll @ r_yaw @ r_pitch


def euler_from_matrix(rotation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`rotation_matrix`: B×3×3 → (yaw, pitch, roll) in degrees, each of shape B.

    Unique for |yaw| < 90°, which covers every head pose the model handles.
    """
    # R = Rz(r) · Ry(-y) · Rx(-p); its third row is (sin y, -cos y · sin p, cos y · cos p)
    # and its first column (cos y · cos r, cos y · sin r, sin y).
    r = rotation
    yaw = torch.asin(r[:, 2, 0].clamp(-1.0, 1.0))
    pitch = torch.atan2(-r[:, 2, 1], r[:, 2, 2])
    roll = torch.atan2(r[:, 1, 0], r[:, 0, 0])
    return torch.rad2deg(yaw), torch.rad2deg(pitch), torch.rad2deg(roll)


def compose_keypoints(
    canonical: Tensor, deformation: Tensor, rotation: Tensor, translation: Tensor, scale: Tensor
) -> Tensor:
    """x = s · R · (x_c + δ) + t.

    canonical x_c: B×K×3, deformation δ: B×K×3, rotation R: B×3×3, translation t: B×3, scale s: B.
    Returns the posed keypoints, B×K×3.
    """
    points = canonical + deformation  # B×K×3
    rotated = points @ rotation.transpose(1, 2)  # row vectors: (R·p)^T = p^T·R^T
    return scale[:, None, None] * rotated + translation[:, None, :]


def keypoint_jacobians(rotation: Tensor, scale: Tensor) -> Tensor:
    """The linear part A = s · R of the composition, B×3×3 (maps canonical offsets to posed ones)."""
    return scale[:, None, None] * rotation


def bins_to_degrees(logits: Tensor, num_bins: int, max_degrees: float) -> Tensor:
    """Expectation over angle bins (the face-vid2vid/Hopenet head): B×num_bins logits → B degrees.

    The bins are ``num_bins`` equal intervals covering [-max_degrees, max_degrees]; the angle is the
    softmax-weighted mean of the bin centres, which is differentiable and not limited to bin centres.
    """
    width = 2.0 * max_degrees / num_bins
    centres = torch.arange(num_bins, device=logits.device, dtype=logits.dtype) * width - max_degrees + width / 2
    return (logits.softmax(dim=-1) * centres).sum(dim=-1)


def degrees_to_bin(angle: Tensor, num_bins: int, max_degrees: float) -> Tensor:
    """Index of the bin containing each angle (B), for a classification loss on pseudo-labels."""
    width = 2.0 * max_degrees / num_bins
    return ((angle + max_degrees) / width).floor().clamp(0, num_bins - 1).long()

