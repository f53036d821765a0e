"""Where the warp stretches or squeezes the source: the generator's cue for what it has to paint.

A backward flow f maps each driving-frame point to the source point it samples. Its Jacobian determinant is the
source area one unit of output area draws from: far below 1 where the warp stretches a thin strip of the source
over a large region (lips that part over a mouth the source never showed, the near cheek of a turn), above 1
where it squeezes a region into a thin one (an eye closing under its lid). Both are where the warped photo is
wrong and the generator must paint; without this map the generator sees only the warped features, in which
stretched lips look like lips.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .blocks import full_precision

STRETCH_LIMIT = 3.0  # |log area change| is clipped here (e³ ≈ 20×); a fold (determinant ≤ 0) reads as −limit


def log_area_change(flow: Tensor) -> Tensor:
    """B×S×S×2 backward flow (normalised coordinates, x then y) → B×1×S×S log of its Jacobian determinant,
    clipped to ±:data:`STRETCH_LIMIT` (0 for the identity, any translation or rotation)."""
    with full_precision(flow):
        f = flow.float().permute(0, 3, 1, 2)  # B×2×S×S
        size = f.shape[-1]
        padded = F.pad(f, (1, 1, 1, 1), mode="replicate")
        spacing = 2.0 / size  # one pixel of the S×S grid in normalised units
        d_dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / (2 * spacing)
        d_dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / (2 * spacing)
        # At the border the one-sided difference halves the derivative: use the inner neighbour's instead.
        d_dx = torch.cat([d_dx[..., :, 1:2], d_dx[..., :, 1:-1], d_dx[..., :, -2:-1]], dim=-1)
        d_dy = torch.cat([d_dy[..., 1:2, :], d_dy[..., 1:-1, :], d_dy[..., -2:-1, :]], dim=-2)
        determinant = d_dx[:, 0] * d_dy[:, 1] - d_dy[:, 0] * d_dx[:, 1]  # B×S×S
        log_det = torch.log(determinant.clamp_min(math.exp(-STRETCH_LIMIT)))
        return log_det.clamp(-STRETCH_LIMIT, STRETCH_LIMIT).unsqueeze(1)


__all__ = ["STRETCH_LIMIT", "log_area_change"]
