"""Image grids for TensorBoard: source | driving | output | keypoints drawn."""

from __future__ import annotations

import colorsys

import torch
from torch import Tensor


def keypoint_colours(k: int) -> Tensor:
    """K×3 distinct colours in [0, 1]."""
    return torch.tensor([colorsys.hsv_to_rgb(i / max(1, k), 0.9, 1.0) for i in range(k)], dtype=torch.float32)


def draw_keypoints(images: Tensor, keypoints: Tensor, radius: float = 2.5) -> Tensor:
    """Paint each keypoint as a coloured dot. images B×3×H×W in [0, 1], keypoints B×K×(2|3) in normalised
    coordinates (x right, y down, [-1, 1]); returns a new B×3×H×W tensor."""
    images = images.detach().float().cpu()
    kp = keypoints.detach().float().cpu()[..., :2]
    b, _, h, w = images.shape
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    px = (kp[..., 0] + 1) * w / 2 - 0.5  # B×K pixel coordinates (align_corners=False)
    py = (kp[..., 1] + 1) * h / 2 - 0.5
    colours = keypoint_colours(kp.shape[1])
    out = images.clone()
    for i in range(b):
        for k in range(kp.shape[1]):
            d2 = (xs - px[i, k]) ** 2 + (ys - py[i, k]) ** 2
            mask = (d2 <= radius**2).float()
            out[i] = out[i] * (1 - mask) + colours[k][:, None, None] * mask
    return out


def pair_grid(source: Tensor, driving: Tensor, output: Tensor, source_kp: Tensor, driving_kp: Tensor,
              rows: int = 4) -> Tensor:
    """3×(rows·H)×(5·W) grid: source | driving | output | source + x_s | output + x_d."""
    n = min(rows, source.shape[0])
    cols = [
        source[:n].detach().float().cpu(),
        driving[:n].detach().float().cpu(),
        output[:n].detach().float().cpu().clamp(0, 1),
        draw_keypoints(source[:n], source_kp[:n]),
        draw_keypoints(output[:n].clamp(0, 1), driving_kp[:n]),
    ]
    row_images = [torch.cat([c[i] for c in cols], dim=-1) for i in range(n)]
    return torch.cat(row_images, dim=-2)


__all__ = ["draw_keypoints", "keypoint_colours", "pair_grid"]
