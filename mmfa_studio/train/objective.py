"""The training objective: every loss term and its weight, in one place.

A new loss: a weight in :class:`~.config.LossWeights`, a field of the same name in :class:`LossTerms`, and
its computation in :meth:`Objective.generator_terms` (from the typed :class:`~.step.StepOutput`; a term that
needs something the step does not yet return gets a field there). The loss functions themselves live in
:mod:`.losses`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..face.regions import TRAINING_REGIONS, region_l1, region_masks
from ..model import ModelConfig
from . import losses as L
from .config import LossWeights, TrainConfig
from .dataset import PairSample
from .runtime import NO_TIMER, Timer
from .step import StepOutput, View


@dataclass
class LossTerms:
    """The generator's loss terms of one step: unweighted 0-dim tensors, None where not computed this step.

    Each field is named like its weight in :class:`~.config.LossWeights`; the total sums them in field order.
    """

    perceptual: Tensor | None  # None when its weight is 0
    pyramid_l1: Tensor
    gan: Tensor | None  # None before train.discriminator_start (and with no adversarial weight)
    feature_matching: Tensor | None
    equivariance: Tensor
    equivariance_pose: Tensor
    keypoint_prior: Tensor
    deformation_prior: Tensor
    canonical: Tensor
    kl: Tensor
    keypoint_flow: Tensor
    expression: Tensor
    head_pose: Tensor
    scale_anchor: Tensor
    expression_regions: Tensor | None  # None when its weight is 0
    painted_regions: Tensor | None  # None when its weight is 0
    painted_l1: Tensor | None  # None when its weight is 0

    def named(self) -> dict[str, Tensor]:
        """The computed terms by name (logging, TensorBoard)."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}

    def weighted_total(self, weights: LossWeights) -> Tensor:
        return sum(getattr(weights, name) * value for name, value in self.named().items())


class Objective:
    """Computes the generator's loss terms from a step's output, their weights at a step, and the
    discriminator's loss."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, perceptual: L.PerceptualLoss,
                 discriminator: nn.Module, timer: Timer = NO_TIMER):
        self.model_cfg, self.cfg = model_cfg, cfg
        self.perceptual = perceptual
        self.discriminator = discriminator  # the bare network: the G step's pass needs no DDP
        self.timer = timer

    def weights(self, step: int) -> LossWeights:
        """train.loss, with the KL weight on its annealing ramp."""
        cfg = self.cfg
        return dataclasses.replace(cfg.loss,
                                   kl=L.kl_weight(step, cfg.loss.kl, cfg.kl_anneal_start, cfg.kl_anneal_steps))

    def adversarial(self, step: int) -> bool:
        """Whether the GAN terms (and so the discriminator step) are on at ``step``."""
        w = self.cfg.loss
        return step >= self.cfg.discriminator_start and (w.gan > 0 or w.feature_matching > 0)

    def generator_terms(self, out: StepOutput, batch: PairSample, warp: L.RandomWarp, adversarial: bool) -> LossTerms:
        """Every generator-side term. ``batch``: on the device, images at the training size; ``warp``: the
        equivariance warp that made the step's warped view."""
        cfg, w, t = self.cfg, self.cfg.loss, self.timer
        fake, real = out.image, batch.driving
        with t.section("perceptual"):
            perceptual = self.perceptual(fake, real) if w.perceptual > 0 else None
            pyramid_l1 = L.pyramid_l1(out.render.output.pyramid, real)
        gan = feature_matching = None
        with t.section("D (G step)"):
            if adversarial:
                with torch.no_grad():
                    d_real = self.discriminator(real)
                d_fake = self.discriminator(fake)
                gan = L.generator_hinge_loss(d_fake)
                feature_matching = L.feature_matching_loss(d_real, d_fake)
        with t.section("other losses"):
            views = out.views
            pose = views.pose.float()  # (yaw, pitch, roll, log s) of every view
            driving, warped, augmented = (views.rows(v) for v in (View.DRIVING, View.WARPED, View.AUGMENTED))
            own_frames = views.rows(View.SOURCE, View.DRIVING)  # the two frames with pose labels
            flows = out.flow_targets
            depth_target = None if self.model_cfg.keypoint_depth == "template" else cfg.depth_target
            regions = (region_masks(batch.driving_landmarks, real.shape[-1], regions=TRAINING_REGIONS)
                       if w.expression_regions > 0 or w.painted_regions > 0 else None)  # the driver's mouth, eyes
            return LossTerms(
                perceptual=perceptual, pyramid_l1=pyramid_l1, gan=gan, feature_matching=feature_matching,
                equivariance=L.equivariance_loss(out.equivariance_keypoints, out.equivariance_warped_keypoints, warp),
                equivariance_pose=L.pose_equivariance_loss(*pose[driving].unbind(-1), *pose[warped].unbind(-1), warp),
                keypoint_prior=L.keypoint_prior_loss(out.own_driving_keypoints, cfg.keypoint_min_distance,
                                                     depth_target),
                deformation_prior=L.deformation_prior_loss(out.render_delta),
                canonical=L.canonical_consistency_loss(out.source.canonical, out.driving_canonical),
                kl=L.kl_loss(views.mu, views.logvar, cfg.kl_free_nats),
                keypoint_flow=(sum(L.keypoint_flow_loss(*f) for f in flows) / len(flows) if flows
                               else views.mu.new_zeros(())),
                expression=L.expression_invariance_loss(views.mu[driving], views.mu[augmented],
                                                        views.mean_delta[driving], views.mean_delta[augmented]),
                head_pose=L.head_pose_loss(
                    views.motion.pose_logits[own_frames], torch.cat([batch.source_pose, batch.driving_pose]),
                    torch.cat([batch.has_pose, batch.has_pose]), self.model_cfg.pose_bins,
                    self.model_cfg.pose_max_degrees),
                scale_anchor=L.scale_anchor_loss(pose[own_frames, 3], cfg.scale_anchor_target),
                expression_regions=(region_l1(fake, real, regions, batch.has_landmarks)
                                    if w.expression_regions > 0 else None),
                painted_regions=(region_l1(out.render.output.painted, real, regions, batch.has_landmarks)
                                 if w.painted_regions > 0 else None),
                painted_l1=((out.render.output.painted.float() - real.float()).abs().mean()
                            if w.painted_l1 > 0 else None),
            )

    @staticmethod
    def discriminator_loss(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """Hinge loss of one pass over real and (detached) generated frames. ``discriminator``: the network as
        the step trains it (under DDP, its wrapper)."""
        both = discriminator(torch.cat([real, fake.detach().to(real.dtype)]))
        real_out, fake_out = L.split_discriminator_output(both, real.shape[0])
        return L.discriminator_hinge_loss(real_out, fake_out)


__all__ = ["LossTerms", "Objective"]
