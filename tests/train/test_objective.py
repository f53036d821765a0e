"""The objective: every loss term named like its weight, all read from one typed step output."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmfa_studio.model import MMFA, MultiScaleDiscriminator
from mmfa_studio.train import losses as L
from mmfa_studio.train.config import LossWeights
from mmfa_studio.train.dataset import ArrayStore, PairDataset, collate_pairs
from mmfa_studio.train.objective import LossTerms, Objective
from mmfa_studio.train.step import GeneratorStep

from .conftest import blob_video
from .test_trainer import tiny


def test_every_loss_term_has_a_weight_of_the_same_name():
    assert [f.name for f in dataclasses.fields(LossTerms)] == [
        "perceptual", "pyramid_l1", "gan", "feature_matching", "equivariance", "equivariance_pose", "keypoint_prior",
        "deformation_prior", "canonical", "kl", "keypoint_flow", "expression", "head_pose", "scale_anchor",
        "expression_regions", "painted_regions", "painted_l1"]
    assert {f.name for f in dataclasses.fields(LossTerms)} == {f.name for f in dataclasses.fields(LossWeights)}


def test_the_objective_weighs_every_term_of_a_step_and_skips_the_adversarial_ones_before_their_start():
    model_cfg, cfg = tiny(discriminator_start=5)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, keypoint_flow=1.0))
    torch.manual_seed(0)
    mmfa = MMFA(model_cfg).train()
    step = GeneratorStep(mmfa, pose_edits=(cfg.edit_yaw, cfg.edit_pitch))
    objective = Objective(model_cfg, cfg, L.PerceptualLoss(None, cfg.perceptual_scales),
                          MultiScaleDiscriminator(model_cfg).eval())
    dataset = PairDataset(ArrayStore({"blobs": blob_video(8)}), model_cfg.image_size, cfg.augment, seed=0)
    raw = collate_pairs([dataset[i] for i in range(2)])
    batch = dataclasses.replace(raw, source=raw.source.float() / 255, driving=raw.driving.float() / 255)
    warp = L.RandomWarp.random(2, cfg.equivariance_affine, cfg.equivariance_tps, cfg.equivariance_tps_points)
    out = step(batch.source, batch.driving, warp.warp_image(batch.driving), batch.driving)
    assert len(out.flow_targets) == 1
    for adversarial in (False, True):
        terms = objective.generator_terms(out, batch, warp, adversarial)
        named = terms.named()
        assert ("gan" in named) == ("feature_matching" in named) == adversarial
        assert all(v.dim() == 0 and torch.isfinite(v) for v in named.values())
    assert not objective.adversarial(4) and objective.adversarial(5)
    weights = objective.weights(step=50)
    assert weights.kl == pytest.approx(cfg.loss.kl * 50 / cfg.kl_anneal_steps)
    expected = sum(getattr(weights, k) * v for k, v in named.items())
    assert torch.equal(terms.weighted_total(weights), expected)
