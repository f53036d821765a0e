"""What training reports: a log line per logging window (losses, speed, learning rate) and TensorBoard's
scalars and image grids."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .dataset import PairSample
from .runtime import Runtime
from .visualize import pair_grid

# The terms a log line shows, in this order (TensorBoard gets every term).
LOG_LINE_TERMS = ("total", "perceptual", "gan", "feature_matching", "equivariance", "keypoint_prior", "keypoint_flow",
                  "deformation_prior", "kl", "expression", "head_pose", "scale_anchor", "expression_regions",
                  "painted_regions", "painted_l1", "discriminator")


@dataclass
class Preview:
    """The last step's pairs and what the model made of them, for TensorBoard's image grid."""

    batch: PairSample
    output: Tensor
    source_keypoints: Tensor
    driving_keypoints: Tensor


class Logbook:
    """Sums each step's losses over a logging window, then reports their means: one line through ``log`` and,
    when opened, TensorBoard scalars. Under DDP every rank keeps a window and reports the means over all."""

    def __init__(self, runtime: Runtime, log: Callable[[str], None], images_per_step: int):
        self.runtime, self.log = runtime, log
        self.images_per_step = images_per_step  # over every process
        self.writer = None
        self.start_window()

    def start_window(self) -> None:
        self.window_start = time.monotonic()
        self.steps = 0
        self.data_wait = 0.0  # seconds blocked on the data loader
        self.totals: dict[str, Any] = defaultdict(float)

    def open_tensorboard(self, run_dir: Path, step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step or None)
        except Exception as exc:  # noqa: BLE001 - missing or broken tensorboard must not stop training
            self.log(f"tensorboard unavailable ({type(exc).__name__}: {exc}): scalars go to stdout only")

    def add(self, result: dict[str, Tensor], data_wait: float) -> None:
        """One step's losses (0-dim tensors, summed without a host sync) and its wait for data."""
        self.steps += 1
        self.data_wait += data_wait
        for k, v in result.items():
            self.totals[k] = self.totals[k] + v

    def report(self, step: int, lr: float, elapsed_s: float) -> None:
        """The window's means as a log line and TensorBoard scalars; starts the next window. Raises
        FloatingPointError on a non-finite mean (on every rank alike)."""
        means = self._window_means()
        dt = time.monotonic() - self.window_start
        if not all(math.isfinite(v) for v in means.values()):
            raise FloatingPointError(f"non-finite loss by step {step}: {means}")
        self.write(step, means, self.steps / dt if dt > 0 else 0.0, self.data_wait / dt if dt > 0 else 0.0, lr,
                   elapsed_s)
        self.start_window()

    def _window_means(self) -> dict[str, float]:
        """Per-step means over the logging window and, under DDP, over every process: each rank's losses cover
        only its own shard of the batch, and every rank must see the same values (the non-finite check raises
        on all of them or none). Every rank calls this at the same steps, with the same keys."""
        keys = sorted(self.totals)
        values = torch.stack([torch.as_tensor(self.totals[k], dtype=torch.float32,
                                              device=self.runtime.device).reshape(())
                              for k in keys]) / max(1, self.steps)
        return dict(zip(keys, self.runtime.mean_over_ranks(values).tolist()))

    def write(self, step: int, means: dict[str, float], its: float, data_fraction: float, lr: float,
              elapsed_s: float) -> None:
        imgs = its * self.images_per_step
        parts = " ".join(f"{k} {means[k]:.4f}" for k in LOG_LINE_TERMS if k in means)
        self.log(f"step {step} | {its:.2f} it/s {imgs:.1f} img/s, waiting for data {100 * data_fraction:.0f} % | "
                 f"{parts} | lr {lr:.2e} | {int(elapsed_s // 60):02d}:{int(elapsed_s % 60):02d}")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"loss/{k}", v, step)
            self.writer.add_scalar("speed/iterations_per_s", its, step)
            self.writer.add_scalar("speed/images_per_s", imgs, step)
            self.writer.add_scalar("speed/data_wait_fraction", data_fraction, step)
            self.writer.add_scalar("lr/generator", lr, step)

    def images(self, step: int, preview: Preview | None) -> None:
        if preview is None or self.writer is None:
            return
        p = preview
        grid = pair_grid(p.batch.source, p.batch.driving, p.output, p.source_keypoints, p.driving_keypoints)
        self.writer.add_image("pairs/source|driving|output|source_kp|output_kp", grid, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ["LOG_LINE_TERMS", "Logbook", "Preview"]
