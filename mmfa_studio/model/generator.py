"""Multi-scale generator: warped appearance features → images at feature_size·2^i for every i.

At each scale the network predicts an RGB image and a blend mask m; the output is
    m · (source image warped by the dense flow) + (1 − m) · RGB,
so sharp detail comes straight from the full-resolution source and the network only has to fill what the
warp cannot show (occlusions, mouth interior). The blend, the painted image and the flow are kept, so the same
blend can be made at any larger size from a larger crop of the photo (the engine's detail render).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import ConvBlock, ResBlock, UpBlock
from .config import ModelConfig


@dataclass
class GeneratorOutput:
    image: Tensor  # B×3×H×W, the final (largest) scale, in [0, 1]
    pyramid: list[Tensor]  # B×3×(S·2^i)², smallest first; pyramid[-1] is image
    blend: Tensor  # B×1×H×W, weight of the warped source in the final image
    warped_source: Tensor  # B×3×H×W, the source image warped by the flow
    painted: Tensor  # B×3×H×W, what the network paints where the blend is 0
    image_flow: Tensor  # B×h×w×2, the flow that warped the source (normalised coordinates)


def warp_image(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp B×C×H×W by a B×h×w×2 flow given in normalised coordinates (resampled to H×W)."""
    h, w = image.shape[-2:]
    if flow.shape[1:3] != (h, w):
        # contiguous first: bilinear resampling of the permuted (channels-last) flow was 4× slower on the CPU
        flow = F.interpolate(flow.permute(0, 3, 1, 2).contiguous(), size=(h, w), mode="bilinear", align_corners=False)
        flow = flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, flow.to(image.dtype), align_corners=False, padding_mode="border")


def resized_source(image: Tensor, size: int) -> Tensor:
    """B×3×H×W → B×3×size×size (antialiased), or ``image`` itself when it is that size already."""
    if image.shape[-1] == size:
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class Generator(nn.Module):
    """B×C_in×S×S warped features (already multiplied by the occlusion map) → :class:`GeneratorOutput`."""

    def __init__(self, cfg: ModelConfig, in_channels: int):
        super().__init__()
        chans = cfg.generator_channels
        self.inp = ConvBlock(2, in_channels, chans[0])
        self.res = nn.Sequential(*[ResBlock(2, chans[0]) for _ in range(cfg.generator_res_blocks)])
        self.up = nn.ModuleList([UpBlock(2, a, b) for a, b in zip(chans, chans[1:])])
        # One 4-channel head per scale: RGB + blend-mask logit.
        self.heads = nn.ModuleList([nn.Conv2d(c, 4, 3, padding=1) for c in chans])

    def forward(self, features: Tensor, source_image: Tensor, image_flow: Tensor,
                all_scales: bool = True) -> GeneratorOutput:
        h = self.res(self.inp(features))
        pyramid: list[Tensor] = []
        n = len(self.heads)
        for i, head in enumerate(self.heads):
            if i > 0:
                h = self.up[i - 1](h)
            if all_scales or i == n - 1:
                # contiguous before the sigmoid: on a channel slice of a channels-last tensor it was 10× slower
                out = torch.sigmoid(head(h).float().contiguous())
                size = out.shape[-1]
                src = resized_source(source_image, size)
                warped = warp_image(src.float(), image_flow.float())
                blend, painted = out[:, 3:], out[:, :3]
                pyramid.append(blend * warped + (1 - blend) * painted)
        return GeneratorOutput(image=pyramid[-1], pyramid=pyramid, blend=blend, warped_source=warped,
                               painted=painted, image_flow=image_flow)

