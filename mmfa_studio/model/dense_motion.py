"""Dense motion: per-keypoint warps → soft masks + occlusion → one dense backward flow.

For a point p of the driving frame, keypoint k proposes the source point
    T_k(p) = x_s,k + J · (p − x_d,k),   J = A_s · A_d⁻¹,  A = s·R      (face-vid2vid, eq. 2)
and a background proposal T_0(p) = p. With ``tps_motion`` one more, global proposal is added last: the thin-plate
spline through all keypoint pairs, T_tps(x_d,k) = x_s,k, which carries the whole face smoothly with its keypoints
(TPSMM, Zhao & Zhang 2022) where a mix of the local proposals tends to fall back to the background. A network looks
at the source deformed by every proposal plus the keypoint heatmaps and predicts soft masks M_k; the flow is
Σ_k M_k · T_k(p).

Anchor points (the face tracker's dense mesh: lips, eyelids, brows, jaw) can join the spline's control points, so
the spline carries what 15 keypoints cannot: a mouth that opens, a lid that drops. They are optional and change
no weight, so a model trained without them renders with them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import Hourglass, full_precision, make_coordinate_grid
from .closing_warp import ClosingRegion
from .config import ModelConfig


@dataclass
class AnchorPoints:
    """Extra thin-plate-spline control pairs in the image plane, normalised (grid_sample) coordinates.

    source: B×N×2 where the points lie in the source image; driving: B×N×2 where the render must put them.
    """

    source: Tensor
    driving: Tensor
    # The eyes' and the mouth's openings among them, for model.closing_warp (model/closing_warp.py).
    closing: tuple[ClosingRegion, ...] = ()


@dataclass
class DenseMotion:
    flow: Tensor  # B×S×S×2 (hybrid) or B×D×S×S×3 (volumetric): source sampling coordinates, grid_sample order
    occlusion: Tensor  # B×1×S×S in [0, 1]: 1 = visible in the source
    masks: Tensor  # B×P×S×S (or ×D×S×S): soft assignment to background (0), keypoints and the spline (last)
    # model.anchor_flow: the spline through the anchors (B×S×S×2) and how much it rules the flow (B×S×S×1), so
    # that the render can keep it exact after smoothing the rest; None otherwise.
    anchor_spline: Tensor | None = None
    anchor_weight: Tensor | None = None

    def with_anchor_spline(self, flow: Tensor) -> Tensor:
        """``flow`` (B×S×S×2) with the anchors' spline put back where it rules (unchanged without one)."""
        if self.anchor_spline is None:
            return flow
        return flow + self.anchor_weight * (self.anchor_spline.to(flow.dtype) - flow)


ANCHOR_REACH = 0.08  # σ of an anchor's neighbourhood for model.anchor_flow (normalised units: 4 % of the crop)


def squared_distances(points: Tensor, grid: Tensor) -> Tensor:
    """points B×K×n, grid (…)×n → B×K×(…) squared distances, in fp32.

    |g|² + |p|² − 2·p·g as one matrix product: the differences' B×K×(…)×n tensor cost the render more than its
    convolutions on the CPU (152 anchors on a 64² grid). Rounding puts an exact zero at about ±1e-7, clamped."""
    with full_precision(points):
        p, g = points.float(), grid.float().reshape(-1, grid.shape[-1])
        # [−2p, |p|², 1]·[g, 1, |g|²]ᵀ: the whole sum in one product, no B×K×G temporaries to add
        p_side = torch.cat([-2 * p, p.pow(2).sum(-1, keepdim=True), torch.ones_like(p[..., :1])], dim=-1)
        g_side = torch.cat([g, torch.ones_like(g[:, :1]), g.pow(2).sum(-1, keepdim=True)], dim=-1)
        d2 = p_side @ g_side.T  # B×K×G
        return d2.clamp_min_(0).view(points.shape[:2] + grid.shape[:-1])


def gaussian_heatmaps(keypoints: Tensor, grid: Tensor, variance: float) -> Tensor:
    """keypoints B×K×n, grid (…)×n → B×K×(…) unnormalised Gaussians (fp32)."""
    return torch.exp(-0.5 / variance * squared_distances(keypoints, grid))


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


def thin_plate_spline(control: Tensor, target: Tensor, grid: Tensor, regularisation: float = 1e-3) -> Tensor:
    """The smooth map through control → target, evaluated on a grid: B×(…)×n.

    control, target B×K×n (here driving and source keypoints), grid (…)×n. The map is affine plus
    Σ_k w_k·U(|p − c_k|) with U(r) = r²·log r², fitted in fp32; ``regularisation`` (added to the kernel's
    diagonal) keeps it well posed when keypoints nearly coincide. Identical control and target give the identity.
    """
    with full_precision(control):
        c, v, g = control.float(), target.float(), grid.float()
        b, k, n = c.shape

        def kernel(d2: Tensor) -> Tensor:
            if d2.requires_grad:  # xlogy's slope is −∞ at the control points themselves
                return d2 * torch.log(d2.clamp_min(1e-12))
            # log then multiply: xlogy_ cost 3× as much on the CPU (no vectorised kernel); 0·log(1e-30) ≈ 0
            return torch.log(d2.clamp_min_(1e-30)).mul_(d2)  # d2: a temporary of the caller's

        affine_c = torch.cat([torch.ones_like(c[..., :1]), c], dim=-1)  # B×K×(n+1)
        system = torch.zeros(b, k + n + 1, k + n + 1, device=c.device)
        system[:, :k, :k] = (kernel((c.unsqueeze(2) - c.unsqueeze(1)).pow(2).sum(-1))
                             + regularisation * torch.eye(k, device=c.device))
        system[:, :k, k:] = affine_c
        system[:, k:, :k] = affine_c.transpose(1, 2)
        # A tiny ridge on the affine block keeps the system solvable when the keypoints are collinear (2D) or
        # coplanar (3D); it changes a well-posed fit by ~1e-6.
        system[:, k:, k:] = -1e-6 * torch.eye(n + 1, device=c.device)
        rhs = torch.cat([v, torch.zeros(b, n + 1, n, device=c.device)], dim=1)
        # solve_ex: no host sync for error checking (see MMFA.estimate_motion). On the CPU one system at a time:
        # torch 2.13's batched LU there returned garbage pivots inside a long-running process (the engine
        # benchmark's export batch failed in lu_solve), while each system alone solved.
        if c.device.type == "cpu" and b > 1:
            weights = torch.cat([torch.linalg.solve_ex(system[i:i + 1], rhs[i:i + 1]).result for i in range(b)])
        else:
            weights = torch.linalg.solve_ex(system, rhs).result  # B×(K+n+1)×n
        points = g.reshape(-1, n)
        radial_weights = weights[:, :k].transpose(1, 2)  # B×n×K
        # wᵀ·U, the product over K with U as it is laid out (U·w on its transpose was 8× slower on the CPU), a
        # chunk of the grid at a time: each chunk's B×K×chunk distances stay in the cache (4× faster on the CPU)
        radial = torch.cat([radial_weights @ kernel(squared_distances(c, points[start:start + GRID_CHUNK]))
                            for start in range(0, len(points), GRID_CHUNK)], dim=-1)  # B×n×P
        affine_p = torch.cat([torch.ones_like(points[:, :1]), points], dim=-1)  # P×(n+1)
        mapped = radial.transpose(1, 2) + affine_p @ weights[:, k:]
        return mapped.view((b,) + grid.shape)


GRID_CHUNK = 1024  # grid points per pass of the spline's kernel


def motion_proposals(grid: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor, tps: bool,
                     anchors: AnchorPoints | None = None) -> Tensor:
    """Background, per-keypoint and (with ``tps``) thin-plate-spline warps: B×P×(…)×n, P = K+1 (+1).

    ``anchors`` (2D only) join the spline's control points."""
    motions = sparse_motions(grid, kp_source, kp_driving, jacobian)
    if not tps:
        return motions
    control, target = kp_driving, kp_source
    if anchors is not None:
        b = kp_driving.shape[0]
        control = torch.cat([kp_driving, anchors.driving.to(kp_driving.dtype).expand(b, -1, -1)], dim=1)
        target = torch.cat([kp_source, anchors.source.to(kp_source.dtype).expand(b, -1, -1)], dim=1)
    return torch.cat([motions, thin_plate_spline(control, target, grid).unsqueeze(1).to(motions.dtype)], dim=1)


def proposal_count(cfg: ModelConfig) -> int:
    return cfg.num_keypoints + 1 + int(cfg.tps_motion)


def add_tps_proposal(state: dict[str, Tensor], module: nn.Module, tps_logit: float) -> dict[str, Tensor]:
    """A dense-motion state dict saved without the TPS proposal, grown to fit ``module`` (built with it).

    The TPS inputs come last in the hourglass input and the TPS mask last in the mask head, so every old weight
    keeps its place; the new input weights start at zero (the old behaviour) and the new mask logit at the
    constant ``tps_logit``, which sets how much of the flow the spline takes from the start.
    """
    grown, target = {}, module.state_dict()
    if state["mask.bias"].shape == target["mask.bias"].shape:
        raise ValueError("the dense motion already has as many proposals as the module: nothing to add")
    for name, fresh in target.items():
        old = state[name]
        if old.shape == fresh.shape:
            grown[name] = old
            continue
        if old.dim() != fresh.dim() or any(o > f for o, f in zip(old.shape, fresh.shape)):
            raise ValueError(f"dense motion tensor {name} cannot grow from {tuple(old.shape)} to {tuple(fresh.shape)}")
        new = torch.zeros_like(fresh, dtype=old.dtype)
        new[tuple(slice(0, o) for o in old.shape)] = old
        grown[name] = new
    grown["mask.bias"][-1] = tps_logit
    return grown


class DenseMotion2D(nn.Module):
    """Hybrid variant: 3D keypoints, posed and projected (orthographic), drive a 2D flow at feature_size.

    Inputs: source image B×3×H×W, posed keypoints B×K×3 (source and driving), J = A_s·A_d⁻¹ B×3×3.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        k1, proposals = cfg.num_keypoints + 1, proposal_count(cfg)
        # Inputs: K+1 heatmap differences, then the source deformed by each proposal (3 channels each).
        self.hourglass = Hourglass(
            2, k1 + proposals * 3, cfg.dense_motion_channels, cfg.dense_motion_max_channels, cfg.dense_motion_blocks
        )
        self.mask = nn.Conv2d(self.hourglass.out_channels, proposals, 7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels, 1, 7, padding=3)

    def forward(self, source_image: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor,
                anchors: AnchorPoints | None = None) -> DenseMotion:
        s = self.cfg.feature_size
        b, k = kp_source.shape[:2]
        small = F.interpolate(source_image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        grid = make_coordinate_grid((s, s), small)  # S×S×2
        kp_s, kp_d = kp_source[..., :2], kp_driving[..., :2]
        heat = (gaussian_heatmaps(kp_d, grid, self.cfg.keypoint_sigma)
                - gaussian_heatmaps(kp_s, grid, self.cfg.keypoint_sigma))
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # B×(K+1)×S×S
        motions = motion_proposals(grid, kp_s, kp_d, jacobian[:, :2, :2], self.cfg.tps_motion, anchors)  # B×P×S×S×2
        p = motions.shape[1]
        deformed = F.grid_sample(
            small.repeat_interleave(p, dim=0), motions.flatten(0, 1), align_corners=False, padding_mode="border"
        ).view(b, p * 3, s, s)
        h = self.hourglass(torch.cat([heat, deformed], dim=1))
        # The mask and occlusion heads as one convolution: the occlusion's one channel alone cost half as much as
        # the masks' P on the CPU.
        heads = F.conv2d(h, torch.cat([self.mask.weight, self.occlusion.weight]),
                         torch.cat([self.mask.bias, self.occlusion.bias]), padding=self.mask.padding).float()
        masks = heads[:, :p].softmax(dim=1)
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)  # B×S×S×2
        occlusion = torch.sigmoid(heads[:, p:])
        if anchors is None or self.cfg.anchor_flow <= 0:
            return DenseMotion(flow=flow, occlusion=occlusion, masks=masks)
        # Near the anchors (in the driving frame, where the backward flow is sampled) the spline through them is
        # the flow: the learned mix gave lips and lids only part of their motion.
        # The largest of the anchors' Gaussians is the Gaussian of the nearest anchor: one exp per grid point.
        nearest = squared_distances(anchors.driving.expand(b, -1, -1), grid).amin(dim=1)  # B×S×S
        near = torch.exp(-0.5 / ANCHOR_REACH ** 2 * nearest)
        motion = DenseMotion(flow=flow, occlusion=occlusion, masks=masks, anchor_spline=motions[:, -1].float(),
                             anchor_weight=self.cfg.anchor_flow * near.unsqueeze(-1))  # B×S×S×1
        return replace(motion, flow=motion.with_anchor_spline(flow))


class DenseMotion3D(nn.Module):
    """Volumetric variant (face-vid2vid): 3D warps of the feature volume, 3D hourglass → 3D flow.

    Inputs: feature volume B×C×D×S×S, posed keypoints B×K×3 (source, driving), J B×3×3.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        proposals = proposal_count(cfg)
        self.compress = nn.Conv3d(cfg.volume_channels, cfg.dense_motion_compress, 1)
        # Inputs per proposal: its heatmap difference (zero for the background and the spline) and the
        # compressed volume it deforms.
        self.hourglass = Hourglass(
            3, proposals * (cfg.dense_motion_compress + 1), cfg.dense_motion_channels,
            cfg.dense_motion_max_channels, cfg.dense_motion_blocks,
        )
        self.mask = nn.Conv3d(self.hourglass.out_channels, proposals, 3, padding=1)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels * cfg.volume_depth, 1, 7, padding=3)

    def forward(self, volume: Tensor, kp_source: Tensor, kp_driving: Tensor, jacobian: Tensor,
                anchors: AnchorPoints | None = None) -> DenseMotion:
        if anchors is not None:
            raise ValueError("anchor points are for the hybrid variant's 2D flow")
        b, _, d, s, _ = volume.shape
        k = kp_source.shape[1]
        grid = make_coordinate_grid((d, s, s), volume)  # D×S×S×3
        heat = gaussian_heatmaps(kp_driving, grid, self.cfg.keypoint_sigma) - gaussian_heatmaps(
            kp_source, grid, self.cfg.keypoint_sigma
        )
        motions = motion_proposals(grid, kp_source, kp_driving, jacobian, self.cfg.tps_motion)  # B×P×D×S×S×3
        p = motions.shape[1]
        zeros = torch.zeros_like(heat[:, :1])
        heat = torch.cat([zeros, heat] + [zeros] * (p - k - 1), dim=1)  # B×P×D×S×S
        small = self.compress(volume)
        c = small.shape[1]
        deformed = F.grid_sample(
            small.repeat_interleave(p, dim=0), motions.flatten(0, 1), align_corners=False, padding_mode="border"
        ).view(b, p, c, d, s, s)
        inp = torch.cat([heat.unsqueeze(2), deformed], dim=2).flatten(1, 2)
        h = self.hourglass(inp)
        masks = self.mask(h).float().softmax(dim=1)  # B×P×D×S×S
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)  # B×D×S×S×3
        occlusion = torch.sigmoid(self.occlusion(h.flatten(1, 2)).float())
        return DenseMotion(flow=flow, occlusion=occlusion, masks=masks)
