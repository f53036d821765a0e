"""Every MMFA training loss, each a plain function (or a small module for the perceptual network).

Shapes: images B×3×H×W in [0, 1]; keypoints B×K×3 (posed, normalised image coordinates, see
:mod:`mmfa_studio.model.keypoints`); angles in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..model.blocks import make_coordinate_grid
from ..model.discriminator import DiscriminatorOutput
from ..model.expression_vae import kl_divergence, kl_per_dimension
from ..model.keypoints import bins_to_degrees, degrees_to_bin
from ..perceptual import VGG_WEIGHTS_ENV, VGGTrunk, find_vgg_weights

# ------------------------------------------------------------------------------------------------------
# Perceptual loss: the shift-tolerant VGG16 trunk that stlpips-pytorch ships (ImageNet-trained, offline).
# ------------------------------------------------------------------------------------------------------
# (the trunk itself lives in mmfa_studio/perceptual.py, shared with the evaluation's LPIPS distance)


class PerceptualLoss(nn.Module):
    """Multi-scale perceptual loss: Σ_scales Σ_layers mean |φ_l(x_s) − φ_l(y_s)| (FOMM / face-vid2vid).

    ``trunk`` None gives the clearly-labelled fallback: the same pyramid compared in pixel space (L1).
    """

    def __init__(self, trunk: VGGTrunk | None, scales: Sequence[float] = (1.0, 0.5, 0.25), description: str = ""):
        super().__init__()
        self.trunk = trunk
        self.scales = tuple(scales)
        self.description = description or ("VGG16 (shift-tolerant)" if trunk is not None else "none: multi-scale L1")

    @classmethod
    def build(cls, backbone: str, weights: str | Path | None, stages: Sequence[int],
              scales: Sequence[float]) -> PerceptualLoss:
        if backbone == "none":
            return cls(None, scales, "none (multi-scale pixel L1; no pretrained network)")
        path = find_vgg_weights(weights)
        if path is None:
            raise FileNotFoundError(
                "pretrained VGG weights for the perceptual loss not found: install stlpips-pytorch, pass "
                f"--vgg-weights PATH / set ${VGG_WEIGHTS_ENV}, or set train.perceptual_backbone: none"
            )
        trunk = VGGTrunk(stages)
        trunk.load_weights(path)
        return cls(trunk, scales, f"VGG16 shift-tolerant (stlpips, ImageNet) from {path}, stages {list(stages)}")

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        total = output.new_zeros((), dtype=torch.float32)
        for s in self.scales:
            x, y = output, target
            if s != 1.0:
                size = max(8, round(output.shape[-1] * s))
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                y = F.interpolate(y, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            if self.trunk is None:
                total = total + (x.float() - y.float()).abs().mean()
                continue
            with torch.no_grad():
                fy = self.trunk(y)
            for a, b in zip(self.trunk(x), fy):
                total = total + (a.float() - b.float()).abs().mean()
        return total


def pyramid_l1(pyramid: Sequence[Tensor], target: Tensor) -> Tensor:
    """L1 of each smaller generator output (all but the last) against the target resized to its size."""
    total = target.new_zeros((), dtype=torch.float32)
    for image in pyramid[:-1]:
        size = image.shape[-1]
        small = F.interpolate(target, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        total = total + (image.float() - small.float()).abs().mean()
    return total


# ------------------------------------------------------------------------------------------------------
# Adversarial losses (multi-scale hinge) and feature matching.
# ------------------------------------------------------------------------------------------------------

def discriminator_hinge_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> Tensor:
    """Σ_scales mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))."""
    total = real.logits[0].new_zeros((), dtype=torch.float32)
    for r, f in zip(real.logits, fake.logits):
        total = total + F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
    return total


def generator_hinge_loss(fake: DiscriminatorOutput) -> Tensor:
    """Σ_scales −mean(D(fake))."""
    return sum((-f.float().mean() for f in fake.logits), fake.logits[0].new_zeros((), dtype=torch.float32))


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> Tensor:
    """Σ_scales mean_layers mean |D_l(real) − D_l(fake)| (real features are treated as constants)."""
    total = fake.logits[0].new_zeros((), dtype=torch.float32)
    for rs, fs in zip(real.features, fake.features):
        layer = sum((f.float() - r.detach().float()).abs().mean() for r, f in zip(rs, fs))
        total = total + layer / max(1, len(fs))
    return total


def split_discriminator_output(out: DiscriminatorOutput, first: int) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """Split a discriminator pass over cat([a, b]) into the outputs for a (first ``first`` rows) and b."""
    a = DiscriminatorOutput([logit[:first] for logit in out.logits], [[f[:first] for f in fs] for fs in out.features])
    b = DiscriminatorOutput([logit[first:] for logit in out.logits], [[f[first:] for f in fs] for fs in out.features])
    return a, b


# ------------------------------------------------------------------------------------------------------
# Equivariance: a known random affine + thin-plate-spline warp (FOMM's ``Transform``).
# ------------------------------------------------------------------------------------------------------

@dataclass
class RandomWarp:
    """T(p) = A·p + b + Σ_i w_i · φ(|p − c_i|₁),  φ(r) = r² log r, applied to both coordinates.

    ``warp_image`` samples the image at T(p) for every output pixel p, so the content at q in the warped image
    comes from T(q) in the original: keypoints found at q in the warped image must map to T(q).
    """

    theta: Tensor  # B×2×3 affine [A | b]
    control_points: Tensor  # P×2
    control_params: Tensor  # B×P
    has_tps: bool = True  # False: affine only (skips the spline term)

    @classmethod
    def random(cls, batch: int, affine_std: float, tps_std: float, tps_points: int,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> RandomWarp:
        noise = torch.randn(batch, 2, 3, generator=generator) * affine_std
        theta = noise + torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        axis = torch.linspace(-1, 1, tps_points)
        cy, cx = torch.meshgrid(axis, axis, indexing="ij")
        control = torch.stack([cx.flatten(), cy.flatten()], dim=-1)
        params = torch.randn(batch, control.shape[0], generator=generator) * tps_std
        return cls(theta.to(device), control.to(device), params.to(device), has_tps=tps_std > 0)

    @property
    def affine(self) -> Tensor:
        """B×2×2 linear part A."""
        return self.theta[:, :, :2]

    def transform_points(self, points: Tensor) -> Tensor:
        """B×N×2 → B×N×2 (float32)."""
        p = points.float()
        out = p @ self.affine.transpose(1, 2) + self.theta[:, None, :, 2]
        if self.has_tps:
            dist = (p[:, :, None, :] - self.control_points[None, None]).abs().sum(-1)  # B×N×P
            phi = dist.pow(2) * torch.log(dist + 1e-6)
            out = out + (phi * self.control_params[:, None, :]).sum(-1, keepdim=True)
        return out

    def warp_image(self, image: Tensor) -> Tensor:
        """B×C×H×W → warped copy (reflection padding, so the border is not black)."""
        b, _, h, w = image.shape
        grid = make_coordinate_grid((h, w), image.float()).view(1, h * w, 2).expand(b, -1, -1)
        coords = self.transform_points(grid).view(b, h, w, 2)
        return F.grid_sample(image, coords.to(image.dtype), align_corners=False, padding_mode="reflection")

    def rotation_degrees(self) -> Tensor:
        """In-plane rotation of A (B, degrees, the roll convention): A ≈ s·Rz(θ)."""
        a = self.affine
        return torch.rad2deg(torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1]))

    def log_scale(self) -> Tensor:
        """log of A's isotropic scale √|det A| (B)."""
        return 0.5 * torch.log(torch.linalg.det(self.affine).abs().clamp_min(1e-6))


def equivariance_loss(keypoints: Tensor, warped_keypoints: Tensor, warp: RandomWarp) -> Tensor:
    """mean |x − T(x_w)| over the (x, y) of the posed keypoints: B×K×(2|3) each."""
    return (keypoints[..., :2].float() - warp.transform_points(warped_keypoints[..., :2])).abs().mean()


def pose_equivariance_loss(yaw: Tensor, pitch: Tensor, roll: Tensor, log_scale: Tensor,
                           warped_yaw: Tensor, warped_pitch: Tensor, warped_roll: Tensor, warped_log_scale: Tensor,
                           warp: RandomWarp) -> Tensor:
    """Pose under the in-plane warp: yaw and pitch unchanged, roll_w = roll − θ, log s_w = log s − log s_A
    (the warped image shows the content turned by −θ and shrunk by s_A). Angles in degrees, loss in radians."""
    rad = math.pi / 180.0
    droll = torch.remainder((warped_roll - (roll - warp.rotation_degrees())) * rad + math.pi, 2 * math.pi) - math.pi
    terms = (
        ((warped_yaw - yaw) * rad).abs().mean()
        + ((warped_pitch - pitch) * rad).abs().mean()
        + droll.abs().mean()
        + (warped_log_scale - (log_scale - warp.log_scale())).abs().mean()
    )
    return terms / 4


# ------------------------------------------------------------------------------------------------------
# Priors and the VAE.
# ------------------------------------------------------------------------------------------------------

def keypoint_prior_loss(keypoints: Tensor, min_distance: float = 0.1, depth_target: float | None = 0.33) -> Tensor:
    """Σ_{i<j} relu(min_distance − |xy_i − xy_j|) + |mean_k z_k − depth_target|, averaged over the batch.

    keypoints: B×K×3 (posed). Pushes the keypoints apart in the image plane and fixes their mean depth
    (face-vid2vid). The separation ignores z on purpose: measured in 3D, the cheapest way to separate
    keypoints is to push their depths to ±1, where the tanh saturates and the depth stops learning (and the face
    tears under yaw and pitch).
    ``depth_target=None`` drops the depth term (template depth: the face template fixes the depth already).
    """
    kp = keypoints.float()
    k = kp.shape[1]
    diff = kp[:, :, None, :2] - kp[:, None, :, :2]
    dist = torch.sqrt(diff.pow(2).sum(-1) + 1e-12)  # ε: the diagonal has a defined (zero) gradient
    pairs = torch.triu(torch.ones(k, k, dtype=torch.bool, device=kp.device), diagonal=1)
    spread = F.relu(min_distance - dist[:, pairs]).sum(-1)
    if depth_target is None:
        return spread.mean()
    depth = (kp[..., 2].mean(-1) - depth_target).abs()
    return (spread + depth).mean()


def keypoint_flow_loss(flow: Tensor, kp_driving: Tensor, kp_source: Tensor) -> Tensor:
    """mean_k |F(x_d,k) − x_s,k|₁: the dense backward flow carries each driving keypoint to its source keypoint.

    flow: B×S×S×2 source coordinates (grid_sample order) for each driving position; keypoints B×K×(2|3), of
    which (x, y) are used. Each keypoint's own warp T_k does exactly this at x_d,k (FOMM / face-vid2vid), so a
    dense motion that follows its keypoints pays nothing. The keypoints are constants here: the loss trains the
    dense motion network, which otherwise learns from small same-clip motions to barely move anything.
    """
    where = kp_driving[..., :2].detach().float().unsqueeze(1)  # B×1×K×2
    sampled = F.grid_sample(flow.float().permute(0, 3, 1, 2), where, align_corners=False, padding_mode="border")
    return (sampled[:, :, 0].transpose(1, 2) - kp_source[..., :2].detach().float()).abs().mean()


def deformation_prior_loss(delta: Tensor) -> Tensor:
    """mean |δ| (B×K×3): expression deformations stay small."""
    return delta.float().abs().mean()


def canonical_consistency_loss(canonical_a: Tensor, canonical_b: Tensor) -> Tensor:
    """mean |x_c(a) − x_c(b)| for two frames of the same person (canonical keypoints carry identity only)."""
    return (canonical_a.float() - canonical_b.float()).abs().mean()


def kl_weight(step: int, weight: float, anneal_start: int, anneal_steps: int) -> float:
    """KL annealing: 0 before ``anneal_start``, then a linear ramp to ``weight`` over ``anneal_steps``."""
    if step < anneal_start:
        return 0.0
    if anneal_steps <= 0:
        return weight
    return weight * min(1.0, (step - anneal_start) / anneal_steps)


def kl_loss(mu: Tensor, logvar: Tensor, free_nats: float = 0.0) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)), summed over latent dims, batch mean (see :func:`kl_divergence`).

    ``free_nats`` > 0: each latent dimension's batch-mean KL counts as at least that much ("free bits",
    Kingma et al. 2016), so the KL no longer pushes dimensions that carry less than that toward the prior.
    Without it the expression latent can collapse early in training (the KL near zero, δ about constant).
    """
    mu, logvar = mu.float(), logvar.float()
    if free_nats <= 0:
        return kl_divergence(mu, logvar)
    return kl_per_dimension(mu, logvar).mean(0).clamp(min=free_nats).sum()


# ------------------------------------------------------------------------------------------------------
# Self-supervised expression objective.
# ------------------------------------------------------------------------------------------------------

def expression_invariance_loss(mu: Tensor, augmented_mu: Tensor, delta: Tensor, augmented_delta: Tensor) -> Tensor:
    """The expression of a frame must not change when only its pose/appearance changes.

    mu, augmented_mu: B×Z latent means of a frame and of its augmented copy (colour jitter, in-plane rotation,
    zoom, shift — never a mirror flip: a flip swaps left/right expression, e.g. a wink, and the unsupervised
    keypoints have no known left/right correspondence to undo it); delta, augmented_delta: the decoded B×K×3
    deformations. The reconstruction path completes the objective: the trainer renders the driving frame with
    the deformation decoded from the augmented copy's latent, so it must reproduce the driving expression.
    """
    return (mu.float() - augmented_mu.float()).abs().mean() + (delta.float() - augmented_delta.float()).abs().mean()


def scale_anchor_loss(log_scale: Tensor, target: float) -> Tensor:
    """(mean log s − log target)² over the batch (B log-scales): pins the overall scale, not each frame's."""
    return (log_scale.float().mean() - math.log(target)) ** 2


def head_pose_loss(pose_logits: Tensor, target_degrees: Tensor, valid: Tensor, num_bins: int,
                   max_degrees: float) -> Tensor:
    """Cross-entropy on angle bins + L1 on the expected angle (degrees / 10) against pseudo-labels.

    pose_logits B×3×bins (yaw, pitch, roll), target_degrees B×3, valid B bool; averaged over the valid rows,
    zero (with a graph) when none is valid. No host synchronisation (no data-dependent branch).
    """
    logits = pose_logits.float()
    target = target_degrees.float()
    weight = valid.float()
    bins = degrees_to_bin(target, num_bins, max_degrees)
    ce = F.cross_entropy(logits.reshape(-1, num_bins), bins.reshape(-1), reduction="none").view(-1, 3).mean(-1)
    l1 = (bins_to_degrees(logits, num_bins, max_degrees) - target).abs().mean(-1) / 10.0
    return ((ce + l1) * weight).sum() / weight.sum().clamp_min(1.0)


__all__ = [
    "PerceptualLoss", "RandomWarp", "VGGTrunk", "canonical_consistency_loss", "deformation_prior_loss",
    "discriminator_hinge_loss", "equivariance_loss", "expression_invariance_loss", "feature_matching_loss",
    "find_vgg_weights", "generator_hinge_loss", "head_pose_loss", "keypoint_flow_loss", "keypoint_prior_loss",
    "kl_loss", "kl_weight",
    "pose_equivariance_loss", "pyramid_l1", "scale_anchor_loss", "split_discriminator_output",
]
