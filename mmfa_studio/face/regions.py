"""The face's expressive regions (mouth, eyes) as image masks, from the tracker's mesh.

Training weighs its reconstruction there (``loss.expression_regions``) and ``evaluate`` measures it there: the
mouth and eyes are a few percent of a crop, so a whole-image loss barely notices a mouth painted as stretched
lips or an eye that does not close.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

# MediaPipe mesh contours, each in order around the region: the outer lips and each eye's lid margin.
MOUTH_CONTOUR = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
RIGHT_EYE_CONTOUR = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE_CONTOUR = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
INNER_MOUTH_CONTOUR = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
REGIONS = {"mouth": (MOUTH_CONTOUR,), "eyes": (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)}
# Training also weighs the inside of the mouth on its own: open, it is what the warp cannot show (teeth, the dark
# interior), and within the whole mouth region it was a small share of the loss.
TRAINING_REGIONS = {**REGIONS, "mouth_inside": (INNER_MOUTH_CONTOUR,)}
MARGIN = 0.04  # regions grow by this fraction of the image side: the skin around lips and lids moves with them


def polygon_mask(polygon: Tensor, size: int) -> Tensor:
    """B×V×2 polygon (normalised coordinates, crop = [-1, 1], vertices in order) → B×size×size float mask of
    the pixel centres inside it (even-odd rule)."""
    coords = (torch.arange(size, device=polygon.device, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    py, px = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    a = polygon.float()
    b = torch.roll(a, -1, dims=1)
    ax, ay, bx, by = (t.view(*t.shape, 1, 1) for t in (a[..., 0], a[..., 1], b[..., 0], b[..., 1]))
    spans = (ay > py) != (by > py)  # B×V×size×1: the edge crosses this row
    crossing_x = ax + (bx - ax) * (py - ay) / torch.where((by - ay).abs() < 1e-12, torch.ones_like(by), by - ay)
    crossings = (spans & (px < crossing_x)).sum(dim=1)
    return (crossings % 2).float()


def region_masks(landmarks: Tensor, size: int, margin: float = MARGIN,
                 regions: dict[str, tuple[tuple[int, ...], ...]] = REGIONS) -> Tensor:
    """B×N×2 mesh landmarks (N ≥ 468, normalised coordinates) → B×R×size×size masks of ``regions`` (name → its
    contours; :data:`REGIONS`: mouth, eyes), grown by ``margin`` of the image side and softened at their edge."""
    masks = []
    for contours in regions.values():
        mask = sum(polygon_mask(landmarks[:, list(contour)], size) for contour in contours).clamp(max=1.0)
        masks.append(mask)
    out = torch.stack(masks, dim=1)
    grow = max(1, round(margin * size))
    out = F.max_pool2d(out, 2 * grow + 1, stride=1, padding=grow)
    return F.avg_pool2d(out, 2 * (grow // 2) + 1, stride=1, padding=grow // 2, count_include_pad=False)


def region_errors(image: Tensor, target: Tensor, masks: Tensor) -> Tensor:
    """B×R mean |image − target| inside each region: images B×3×H×W, masks B×R×H×W (at the images' size)."""
    error = (image.float() - target.float()).abs().mean(dim=1, keepdim=True)  # B×1×H×W
    return (error * masks).sum(dim=(2, 3)) / masks.sum(dim=(2, 3)).clamp_min(1.0)


def region_l1(image: Tensor, target: Tensor, masks: Tensor, valid: Tensor | None = None) -> Tensor:
    """:func:`region_errors` averaged over the regions and the valid rows (``valid`` B bool: rows without a
    tracked face count nothing)."""
    per_row = region_errors(image, target, masks).mean(dim=1)
    if valid is None:
        return per_row.mean()
    weights = valid.float()
    return (per_row * weights).sum() / weights.sum().clamp_min(1.0)


__all__ = ["INNER_MOUTH_CONTOUR", "LEFT_EYE_CONTOUR", "MARGIN", "MOUTH_CONTOUR", "REGIONS", "RIGHT_EYE_CONTOUR",
           "TRAINING_REGIONS", "polygon_mask", "region_errors", "region_l1", "region_masks"]
