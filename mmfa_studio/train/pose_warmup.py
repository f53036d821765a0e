"""Supervised warm-up of the motion encoder's head pose on the pseudo-labels written by ``prepare``.

Trained only jointly with the generator, the pose head can learn next to nothing of the head's turn (its
readings barely move across frames whose tracked pose does); fitting the encoder alone to the labels first
costs a small fraction of a joint step (one detector-size network, no generator, no VGG). Off in the bundled
recipes: with few identities it learns who is in the picture rather than how the head turns (models/MODEL_CARD.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..model.keypoints import bins_to_degrees
from ..model.motion_encoder import MotionEncoder
from .dataset import PairSample
from .losses import head_pose_loss


@dataclass
class PoseWarmupResult:
    steps: int
    first_error_deg: float  # mean |angle − label| over yaw, pitch, roll, first logged window
    last_error_deg: float  # the same, last logged window
    seconds: float


def warm_up_head_pose(
    encoder: MotionEncoder, batches: Iterator[PairSample], steps: int, lr: float, device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    log: Callable[[str], None] = lambda _: None, log_every: int = 100,
) -> PoseWarmupResult:
    """Fit the encoder's trunk and pose head (not its translation, scale or expression heads) to the labels.

    ``batches``: pairs of labelled frames (both frames are used; rows without a label count for nothing).
    The trainer runs it on every DDP rank with the same batches and then broadcasts rank 0's weights.
    """
    cfg = encoder.cfg
    params = [*encoder.trunk.parameters(), *encoder.pose.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    was_training = encoder.training
    encoder.train()
    t0 = time.monotonic()
    window: list[float] = []
    first = last = float("nan")
    try:
        for step in range(1, steps + 1):
            batch = next(batches)
            images = torch.cat([batch.source, batch.driving]).to(device, non_blocking=True).float() / 255.0
            labels = torch.cat([batch.source_pose, batch.driving_pose]).to(device)
            valid = torch.cat([batch.has_pose, batch.has_pose]).to(device)
            with autocast():
                motion = encoder(images)
            loss = head_pose_loss(motion.pose_logits, labels, valid, cfg.pose_bins, cfg.pose_max_degrees)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                error = (bins_to_degrees(motion.pose_logits.float(), cfg.pose_bins, cfg.pose_max_degrees)
                         - labels).abs()
                n = valid.sum()
                window.append(float((error.mean(-1) * valid).sum() / n.clamp_min(1)) if n else float("nan"))
            if step % log_every == 0 or step == steps:
                last = float(torch.tensor(window).nanmean())
                if step <= log_every:
                    first = last
                window.clear()
                log(f"pose warm-up {step}/{steps}: mean angle error {last:.2f}° | loss {loss.item():.3f}")
    finally:
        encoder.train(was_training)
    return PoseWarmupResult(steps, first, last, time.monotonic() - t0)


__all__ = ["PoseWarmupResult", "warm_up_head_pose"]
