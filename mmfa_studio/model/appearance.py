"""Appearance encoder: source image → appearance features (2D map, or 3D volume for the volumetric variant)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .blocks import ConvBlock, DownBlock, ResBlock
from .config import ModelConfig


class AppearanceEncoder(nn.Module):
    """B×3×H×W image in [0, 1] (H = image_size) →

    * hybrid:     B×C×S×S       (C = appearance_channels, S = feature_size)
    * volumetric: B×C×D×S×S     (C = volume_channels, D = volume_depth), face-vid2vid's feature volume.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        downs = int(math.log2(cfg.image_size // cfg.feature_size))
        top = cfg.appearance_channels
        chans = [max(16, top // 2**downs)] + [max(16, top // 2 ** (downs - 1 - i)) for i in range(downs)]
        self.stem = ConvBlock(2, 3, chans[0], kernel=7)
        self.down = nn.Sequential(*[DownBlock(2, a, b) for a, b in zip(chans, chans[1:])])
        if cfg.variant == "hybrid":
            self.body = nn.Sequential(ResBlock(2, top), ResBlock(2, top))
        else:
            self.lift = nn.Conv2d(top, cfg.volume_channels * cfg.volume_depth, 1)
            self.body = nn.Sequential(ResBlock(3, cfg.volume_channels), ResBlock(3, cfg.volume_channels))

    def forward(self, image: Tensor) -> Tensor:
        h = self.down(self.stem(image))
        if self.cfg.variant == "hybrid":
            return self.body(h)
        b, _, s, _ = h.shape
        volume = self.lift(h).view(b, self.cfg.volume_channels, self.cfg.volume_depth, s, s)
        return self.body(volume)
