"""Small convolutional building blocks shared by the networks (2D and 3D)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def full_precision(like: Tensor):
    """A block in which autocast is off: the small geometric heads (angles, keypoints, δ) stay fp32 under
    mixed precision, since bf16 rounding of a keypoint is ~1 px at 256 px."""
    return torch.autocast(like.device.type, enabled=False)


def _norm(dim: int, channels: int) -> nn.Module:
    # GroupNorm instead of BatchNorm: behaves the same at batch 1 (the app) and in training, and under DDP.
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


def _conv(dim: int):
    return nn.Conv2d if dim == 2 else nn.Conv3d


class ConvBlock(nn.Module):
    """conv → norm → leaky ReLU, ``dim`` = 2 or 3."""

    def __init__(self, dim: int, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = _conv(dim)(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)
        self.norm = _norm(dim, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class ResBlock(nn.Module):
    """Pre-activation residual block keeping the channel count, ``dim`` = 2 or 3."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        conv = _conv(dim)
        self.norm1, self.conv1 = _norm(dim, channels), conv(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = _norm(dim, channels), conv(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x), 0.2))
        h = self.conv2(F.leaky_relu(self.norm2(h), 0.2))
        return x + h


class DownBlock(nn.Module):
    """Halve the resolution (strided conv) and change the channel count."""

    def __init__(self, dim: int, in_ch: int, out_ch: int):
        super().__init__()
        self.block = ConvBlock(dim, in_ch, out_ch, kernel=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    """Double the resolution (nearest upsampling + conv); in 3D only H and W are doubled."""

    def __init__(self, dim: int, in_ch: int, out_ch: int):
        super().__init__()
        self.dim = dim
        self.block = ConvBlock(dim, in_ch, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        scale = (2.0, 2.0) if self.dim == 2 else (1.0, 2.0, 2.0)
        return self.block(F.interpolate(x, scale_factor=scale, mode="nearest"))


def channel_schedule(base: int, maximum: int, blocks: int) -> list[int]:
    """Channels after each of ``blocks`` down blocks: base·2, base·4, … capped at ``maximum``."""
    return [min(maximum, base * 2 ** (i + 1)) for i in range(blocks)]


class Hourglass(nn.Module):
    """U-Net style encoder–decoder; returns features at the input resolution with ``out_channels``.

    Input B×C_in×(D×)H×W with H, W divisible by 2**blocks. In 3D only H and W are resampled, the depth D
    is kept (as in face-vid2vid's motion estimator).
    """

    def __init__(self, dim: int, in_ch: int, base: int, maximum: int, blocks: int):
        super().__init__()
        self.dim = dim
        chans = channel_schedule(base, maximum, blocks)
        self.stem = ConvBlock(dim, in_ch, base)
        self.down = nn.ModuleList()
        prev = base
        for ch in chans:
            self.down.append(self._down(dim, prev, ch))
            prev = ch
        self.up = nn.ModuleList()
        skips = [base] + chans[:-1]
        for skip in reversed(skips):
            self.up.append(UpBlock(dim, prev, skip))
            prev = skip * 2
        self.out_channels = prev

    @staticmethod
    def _down(dim: int, in_ch: int, out_ch: int) -> nn.Module:
        if dim == 2:
            return DownBlock(2, in_ch, out_ch)
        # 3D: stride (1, 2, 2) so the depth axis is preserved.
        block = ConvBlock(3, in_ch, out_ch)
        block.conv = nn.Conv3d(in_ch, out_ch, 3, stride=(1, 2, 2), padding=1)
        return block

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.up:
            h = torch.cat([up(h), skips.pop()], dim=1)
        return h


def make_coordinate_grid(spatial: tuple[int, ...], like: Tensor) -> Tensor:
    """Normalised pixel-centre coordinates in grid_sample's (x, y[, z]) order.

    spatial = (H, W) → H×W×2;  spatial = (D, H, W) → D×H×W×3.  Values span (-1, 1) exclusive of the edges
    (align_corners=False convention).
    """
    axes = [((torch.arange(n, device=like.device, dtype=like.dtype) + 0.5) / n) * 2 - 1 for n in spatial]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(list(reversed(mesh)), dim=-1)
