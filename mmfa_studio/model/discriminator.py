"""Multi-scale patch discriminator (pix2pixHD / face-vid2vid) with features for feature matching."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from .config import ModelConfig


@dataclass
class DiscriminatorOutput:
    logits: list[Tensor]  # one B×1×h×w patch map per scale
    features: list[list[Tensor]]  # per scale, the intermediate activations (for feature matching)


class PatchDiscriminator(nn.Module):
    """B×3×H×W → B×1×h×w patch logits, plus the intermediate feature maps."""

    def __init__(self, channels: int, max_channels: int, layers: int):
        super().__init__()
        blocks = []
        prev = 3
        for i in range(layers):
            ch = min(max_channels, channels * 2**i)
            stride = 2 if i < layers - 1 else 1
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(prev, ch, 4, stride=stride, padding=1)),
                                        nn.LeakyReLU(0.2)))
            prev = ch
        self.blocks = nn.ModuleList(blocks)
        self.out = spectral_norm(nn.Conv2d(prev, 1, 4, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.out(x), feats


class MultiScaleDiscriminator(nn.Module):
    """One patch discriminator per scale in ``cfg.discriminator_scales`` (1.0 = full resolution)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scales = cfg.discriminator_scales
        self.discs = nn.ModuleList(
            PatchDiscriminator(cfg.discriminator_channels, cfg.discriminator_max_channels, cfg.discriminator_layers)
            for _ in self.scales
        )

    def forward(self, image: Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for scale, disc in zip(self.scales, self.discs):
            x = image if scale == 1.0 else F.interpolate(image, scale_factor=scale, mode="bilinear",
                                                         align_corners=False, antialias=True)
            out, feats = disc(x)
            logits.append(out)
            features.append(feats)
        return DiscriminatorOutput(logits=logits, features=features)
