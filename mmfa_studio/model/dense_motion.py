"""Dense motion: per-keypoint warps → soft masks + occlusion → one dense backward flow.

For a point p of the driving frame, keypoint k proposes the source point
    T_k(p) = x_s,k + J · (p − x_d,k),   J = A_s · A_d⁻¹,  A = s·R      (face-vid2vid, eq. 2)
and a background proposal T_0(p) = p. A network looks at the source deformed by every proposal plus the
keypoint heatmaps and predicts soft masks M_k; the flow is Σ_k M_k · T_k(p).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import Hourglass, make_coordinate_grid
from .config import ModelConfig


@dataclass
class DenseMotion:
    flow: Tensor  # B×S×S×2 (hybrid) or B×D×S×S×3 (volumetric): source sampling coordinates, grid_sample order
    occlusion: Tensor  # B×1×S×S in [0, 1]: 1 = visible in the source
    masks: Tensor  # B×(K+1)×S×S (or ×D×S×S): soft assignment to background (0) and keypoints


def gaussian_heatmaps(keypoints: Tensor, grid: Tensor, variance: float) -> Tensor:
    """keypoints B×K×n, grid (…)×n → B×K×(…) unnormalised Gaussians."""
    shape = (1, 1) + grid.shape[:-1] + (grid.shape[-1],)
    diff = grid.view(shape) - keypoints.view(keypoints.shape[:2] + (1,) * (grid.dim() - 1) + (grid.shape[-1],))
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / variance)


def sparse_motions(grid: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor) -> Tensor:
    """Per-keypoint backward warps, B×(K+1)×(…)×n, with the identity (background) first.

    grid: (…)×n coordinates (n = 2 or 3), keypoints B×K×n, jacobian B×n×n.
    """
    b, k, n = kp_source.shape
    view = (b, k) + (1,) * (grid.dim() - 1) + (n,)
    offset = grid.unsqueeze(0).unsqueeze(0) - kp_driving.view(view)  # B×K×(…)×n
    moved = torch.einsum("bij,bk...j->bk...i", jacobian, offset) + kp_source.view(view)
    identity = grid.unsqueeze(0).unsqueeze(0).expand((b, 1) + grid.shape)
    return torch.cat([identity, moved], dim=1)


class DenseMotion2D(nn.Module):
    """Hybrid variant: 3D keypoints, posed and projected (orthographic), drive a 2D flow at feature_size.

    Inputs: source image B×3×H×W, posed keypoints B×K×3 (source and driving), J = A_s·A_d⁻¹ B×3×3.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        k1 = cfg.num_keypoints + 1
        self.hourglass = Hourglass(
            2, k1 * 4, cfg.dense_motion_channels, cfg.dense_motion_max_channels, cfg.dense_motion_blocks
        )
        self.mask = nn.Conv2d(self.hourglass.out_channels, k1, 7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels, 1, 7, padding=3)

    def forward(self, source_image: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor) -> DenseMotion:
        s = self.cfg.feature_size
        b, k = kp_source.shape[:2]
        small = F.interpolate(source_image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        grid = make_coordinate_grid((s, s), small)  # S×S×2
        kp_s, kp_d = kp_source[..., :2], kp_driving[..., :2]
        heat = gaussian_heatmaps(kp_d, grid, self.cfg.keypoint_sigma) - gaussian_heatmaps(kp_s, grid, self.cfg.keypoint_sigma)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # B×(K+1)×S×S
        motions = sparse_motions(grid, kp_s, kp_d, jacobian[:, :2, :2])  # B×(K+1)×S×S×2
        deformed = F.grid_sample(
            small.repeat_interleave(k + 1, dim=0), motions.flatten(0, 1), align_corners=False, padding_mode="border"
        ).view(b, (k + 1) * 3, s, s)
        h = self.hourglass(torch.cat([heat, deformed], dim=1))
        masks = self.mask(h).float().softmax(dim=1)
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)  # B×S×S×2
        return DenseMotion(flow=flow, occlusion=torch.sigmoid(self.occlusion(h).float()), masks=masks)


class DenseMotion3D(nn.Module):
    """Volumetric variant (face-vid2vid): 3D warps of the feature volume, 3D hourglass → 3D flow.

    Inputs: feature volume B×C×D×S×S, posed keypoints B×K×3 (source, driving), J B×3×3.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        k1 = cfg.num_keypoints + 1
        self.compress = nn.Conv3d(cfg.volume_channels, cfg.dense_motion_compress, 1)
        self.hourglass = Hourglass(
            3, k1 * (cfg.dense_motion_compress + 1), cfg.dense_motion_channels,
            cfg.dense_motion_max_channels, cfg.dense_motion_blocks,
        )
        self.mask = nn.Conv3d(self.hourglass.out_channels, k1, 3, padding=1)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels * cfg.volume_depth, 1, 7, padding=3)

    def forward(self, volume: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor) -> DenseMotion:
        b, _, d, s, _ = volume.shape
        k = kp_source.shape[1]
        grid = make_coordinate_grid((d, s, s), volume)  # D×S×S×3
        heat = gaussian_heatmaps(kp_driving, grid, self.cfg.keypoint_sigma) - gaussian_heatmaps(
            kp_source, grid, self.cfg.keypoint_sigma
        )
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # B×(K+1)×D×S×S
        motions = sparse_motions(grid, kp_source, kp_driving, jacobian)  # B×(K+1)×D×S×S×3
        small = self.compress(volume)
        c = small.shape[1]
        deformed = F.grid_sample(
            small.repeat_interleave(k + 1, dim=0), motions.flatten(0, 1), align_corners=False, padding_mode="border"
        ).view(b, k + 1, c, d, s, s)
        inp = torch.cat([heat.unsqueeze(2), deformed], dim=2).flatten(1, 2)
        h = self.hourglass(inp)
        masks = self.mask(h).float().softmax(dim=1)  # B×(K+1)×D×S×S
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)  # B×D×S×S×3
        occlusion = torch.sigmoid(self.occlusion(h.flatten(1, 2)).float())
        return DenseMotion(flow=flow, occlusion=occlusion, masks=masks)
