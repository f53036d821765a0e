"""Flow smoothing: a Gaussian blur of the dense flow's displacement, so a render's warp cannot fold.

The flow is a soft mix of proposals (background, per-keypoint, spline) that move very differently. Under a large
edit the masks switch from a moving proposal to the still background over a band narrower than the motion, and
the backward warp folds there: at yaw −20° the bundled model tore the hair beside the face and pulled a patch of
collar onto the jaw. Blurring the displacement (flow − identity) with σ of about 3/64 of the image removes those
folds, and on held-out clips it also reconstructs driving frames better: the mix's small-scale ripples were
noise, not motion. Too wide a blur costs turning and carries the lips' and lids' motion away (the model card has
the figures).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .blocks import full_precision


def gaussian_kernel(sigma: float, like: Tensor) -> Tensor:
    """A normalised 1D Gaussian of ``sigma`` pixels, 2·⌈3σ⌉ + 1 taps."""
    radius = max(1, int(3 * sigma + 0.999))
    taps = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def blur(image: Tensor, sigma: float) -> Tensor:
    """B×C×H×W blurred by a separable Gaussian of ``sigma`` pixels, edges replicated (so constants stay)."""
    kernel = gaussian_kernel(sigma, image)
    c, r = image.shape[1], kernel.numel() // 2
    rows = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    image = F.conv2d(F.pad(image, (r, r, 0, 0), mode="replicate"), rows, groups=c)
    return F.conv2d(F.pad(image, (0, 0, r, r), mode="replicate"), rows.transpose(2, 3), groups=c)


def smooth_flow(flow: Tensor, grid: Tensor, sigma: float) -> Tensor:
    """A B×S×S×2 backward flow whose displacement from ``grid`` (S×S×2) is blurred by σ = ``sigma`` × S
    pixels (``sigma`` is a fraction of the image side, so it means the same at every feature size)."""
    with full_precision(flow):
        # fp32 (bf16 coordinates are ~1 px off at 256 px) and contiguous: a grouped bf16 convolution of the
        # permuted (channels-last) tensor took minutes on the CPU (torch 2.13, oneDNN).
        grid = grid.float()
        displacement = (flow.float() - grid).permute(0, 3, 1, 2).contiguous()
        smoothed = blur(displacement, sigma * flow.shape[2]).permute(0, 2, 3, 1)
        return (grid + smoothed).to(flow.dtype)
