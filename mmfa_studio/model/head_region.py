"""The head region: where a render may move the source. Outside it the flow is the identity and the output is
the source itself, so the body and the background stay still while the head turns.

The region is the union of two soft ellipses, one around the source keypoints and one around the driving
keypoints (x, y): for a point p, d = √((p − μ)ᵀ Σ⁻¹ (p − μ)) in units of the keypoints' own spread (μ, Σ their
mean and covariance), with sideways distances shrunk by ``WIDTH_STRETCH`` (the face's sides turn with it) and
those above the centre by ``HAIR_STRETCH`` (the hair too), so the region reaches less far down, where the neck
and collar are. The weight is 1 for d ≤ spread and falls smoothly to 0 at spread + ``SOFTNESS``.

Why: a pose edit turns the keypoints, and the thin-plate spline and keypoint warps carry that turn to every
pixel, so the collar and the shoulders turned with the head and tore at the jaw (the bundled model, yaw −20°).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .blocks import full_precision

SOFTNESS = 1.5  # the fall-off's width, in keypoint spreads
HAIR_STRETCH = 1 / 0.6  # the region reaches this much further above the keypoints' centre than below it
WIDTH_STRETCH = 1.3  # … and this much further sideways (1.0 held back the face's sides: yaw ±20° turned 12-14°)


def ellipse_weight(keypoints: Tensor, grid: Tensor, spread: float) -> Tensor:
    """keypoints B×K×2, grid H×W×2 (same normalised frame) → B×H×W in [0, 1]."""
    centre = keypoints.mean(dim=1, keepdim=True)  # B×1×2
    offsets = keypoints - centre
    covariance = offsets.transpose(1, 2) @ offsets / keypoints.shape[1]  # B×2×2
    covariance = covariance + 1e-4 * torch.eye(2, device=keypoints.device)  # coincident keypoints stay solvable
    p = grid.reshape(1, -1, 2) - centre  # B×HW×2
    y = torch.where(p[..., 1] < 0, p[..., 1] / HAIR_STRETCH, p[..., 1])  # y grows downwards: < 0 is above
    p = torch.stack([p[..., 0] / WIDTH_STRETCH, y], dim=-1)
    distance = ((p @ torch.linalg.inv(covariance)) * p).sum(-1).clamp_min(0).sqrt()
    t = ((distance - spread) / SOFTNESS).clamp(0, 1)
    return (1 - t * t * (3 - 2 * t)).view(keypoints.shape[0], *grid.shape[:2])  # smoothstep: 1 inside, 0 outside


def head_region(kp_source: Tensor, kp_driving: Tensor, grid: Tensor, spread: float) -> Tensor:
    """Source and driving keypoints B×K×≥2, grid H×W×2 → the region's weight B×H×W (fp32)."""
    with full_precision(kp_source):
        g = grid.float()
        return torch.maximum(ellipse_weight(kp_source[..., :2].float(), g, spread),
                             ellipse_weight(kp_driving[..., :2].float(), g, spread))


def confine_flow(flow: Tensor, region: Tensor, grid: Tensor) -> Tensor:
    """A B×H×W×2 backward flow that is the identity (``grid``) where ``region`` (B×H×W) is 0."""
    weight = region.unsqueeze(-1).to(flow.dtype)
    return weight * flow + (1 - weight) * grid.to(flow.dtype)


def composite(image: Tensor, region: Tensor, source: Tensor) -> Tensor:
    """The rendered image B×3×H×W inside the region and the source (B×3×H×W) outside it; ``region`` at any
    size is resized to the image's."""
    weight = F.interpolate(region.unsqueeze(1), size=image.shape[-2:], mode="bilinear", align_corners=False)
    return weight * image + (1 - weight) * source.to(image.dtype)
