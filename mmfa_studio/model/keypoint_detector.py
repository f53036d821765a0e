"""Canonical keypoint detector: image → K canonical 3D keypoints x_c that carry identity only."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import ConvBlock, DownBlock, Hourglass
from .config import ModelConfig


class CanonicalKeypointDetector(nn.Module):
    """B×3×H×W image in [0, 1] → x_c, B×K×3 in [-1, 1]^3.

    x and y come from a spatial soft-argmax over K heatmaps (translation-equivariant by construction, which
    the equivariance loss relies on); z is the heatmap-weighted mean of a per-keypoint depth map. With
    ``keypoint_depth = "template"`` that depth map is a bounded residual on top of ``depth_template`` (1×1×S×S,
    a generic face's depth over the crop, read at the keypoint's (x, y)); the trainer fills the buffer and
    checkpoints carry it.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        downs = int(math.log2(cfg.detector_size // cfg.heatmap_size))
        chans = [cfg.detector_channels * 2**i for i in range(downs + 1)]
        self.stem = ConvBlock(2, 3, chans[0])
        self.down = nn.Sequential(*[DownBlock(2, a, b) for a, b in zip(chans, chans[1:])])
        self.hourglass = Hourglass(2, chans[-1], chans[-1], cfg.detector_max_channels, blocks=3)
        self.heatmap = nn.Conv2d(self.hourglass.out_channels, cfg.num_keypoints, 7, padding=3)
        self.depth = nn.Conv2d(self.hourglass.out_channels, cfg.num_keypoints, 7, padding=3)
        if cfg.keypoint_depth == "template":
            self.register_buffer("depth_template", torch.zeros(1, 1, cfg.heatmap_size, cfg.heatmap_size))

    def forward(self, image: Tensor) -> Tensor:
        size = self.cfg.detector_size
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        h = self.hourglass(self.down(self.stem(image)))
        logits = self.heatmap(h)  # B×K×S×S
        b, k, s, _ = logits.shape
        heat = logits.flatten(2).float().softmax(-1).view(b, k, s, s)
        grid = ((torch.arange(s, device=image.device, dtype=heat.dtype) + 0.5) / s) * 2 - 1
        x = (heat.sum(2) * grid).sum(-1)  # B×K
        y = (heat.sum(3) * grid).sum(-1)
        z = (heat * torch.tanh(self.depth(h).float())).flatten(2).sum(-1)
        if self.cfg.keypoint_depth == "template":
            # The template is read at a detached (x, y): depth must not become a reason to move a keypoint.
            where = torch.stack([x, y], dim=-1).detach().unsqueeze(1)  # B×1×K×2
            template = self.depth_template.float().expand(b, -1, -1, -1)
            base = F.grid_sample(template, where, align_corners=False, padding_mode="border").view(b, k)
            z = base + self.cfg.depth_residual * z
        return torch.stack([x, y, z], dim=-1)
