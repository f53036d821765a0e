"""Motion encoder: image → head pose (yaw, pitch, roll, t, s) and an expression feature."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import ConvBlock, DownBlock, channel_schedule, full_precision
from .config import ModelConfig
from .keypoints import bins_to_degrees, rotation_matrix


@dataclass
class HeadMotion:
    """Per-image motion, batch B. Angles in degrees (conventions in :mod:`.keypoints`)."""

    yaw: Tensor  # B
    pitch: Tensor  # B
    roll: Tensor  # B
    translation: Tensor  # B×3
    scale: Tensor  # B
    expression: Tensor  # B×E, the expression feature the VAE encodes
    pose_logits: Tensor | None = None  # B×3×bins (yaw, pitch, roll), for the head-pose loss

    def rotation(self) -> Tensor:
        """B×3×3."""
        return rotation_matrix(self.yaw, self.pitch, self.roll)


class MotionEncoder(nn.Module):
    """B×3×H×W image in [0, 1] → :class:`HeadMotion`.

    Angles are predicted as ``pose_bins`` classes over ±``pose_max_degrees`` and read out as the softmax
    expectation (face-vid2vid / Hopenet); scale = exp(0.5·tanh(·)) ∈ (0.61, 1.65).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = channel_schedule(cfg.motion_channels, cfg.motion_max_channels, cfg.motion_blocks)
        layers: list[nn.Module] = [ConvBlock(2, 3, cfg.motion_channels, kernel=7)]
        prev = cfg.motion_channels
        for ch in chans:
            layers.append(DownBlock(2, prev, ch))
            prev = ch
        self.trunk = nn.Sequential(*layers)
        self.pose = nn.Linear(prev, 3 * cfg.pose_bins)
        self.translation = nn.Linear(prev, 3)
        self.scale = nn.Linear(prev, 1)
        self.expression = nn.Sequential(nn.Linear(prev, prev), nn.LeakyReLU(0.2), nn.Linear(prev, cfg.expression_dim))
        # Start at the identity pose: zero angles, unit scale, zero translation.
        for head in (self.pose, self.translation, self.scale):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, image: Tensor) -> HeadMotion:
        size = self.cfg.detector_size
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        feature = self.trunk(image).mean(dim=(2, 3)).float()  # B×C
        with full_precision(feature):
            logits = self.pose(feature).view(-1, 3, self.cfg.pose_bins)
            angles = bins_to_degrees(logits, self.cfg.pose_bins, self.cfg.pose_max_degrees)  # B×3
            return HeadMotion(
                yaw=angles[:, 0],
                pitch=angles[:, 1],
                roll=angles[:, 2],
                translation=torch.tanh(self.translation(feature)),
                scale=torch.exp(0.5 * torch.tanh(self.scale(feature)[:, 0])),
                expression=self.expression(feature),
                pose_logits=logits,
            )
