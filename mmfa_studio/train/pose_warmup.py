"""Supervised warm-up of the motion encoder's head pose on the pseudo-labels written by ``prepare``.

Trained only jointly with the generator, the pose head of the stop-9 bundled model learned next to nothing: on the
validation clips its yaw, pitch and roll stayed within ~0.3° across frames whose tracked pose moved 2–9°, so
reconstruction and webcam reenactment hardly moved the head. Fitting the encoder alone to the labels costs a small
fraction of a joint step (one 128-px network, no generator, no VGG).

Measured (stop 10, off in the bundled recipe): 1,500 steps × 32 pairs on the 67 training clips brought the training
error from 2.97° to 1.19°, but on the 8 held-out people the frame-to-frame pose error rose from 2.5° to 3.2° (the
tracked motion is 2.5°): about 55 identities with ~1.4° of pose change inside a clip teach the encoder who is in the
picture, not how the head turns. It needs more varied data (VoxCeleb-scale) to pay off.
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
                error = (bins_to_degrees(motion.pose_logits.float(), cfg.pose_bins, cfg.pose_max_degrees) - labels).abs()
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
