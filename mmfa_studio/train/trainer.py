"""The MMFA training loop: one process per device, DDP under ``torchrun`` (NCCL on CUDA, gloo on CPU).

A step:
  1. generator step — one forward of every generator-side network (:class:`.step.GeneratorStep`: source,
     driving, a warped copy of the driving frame for equivariance, an augmented copy for the expression
     objective), the loss terms of :class:`.objective.Objective`, backward, clip, Adam; EMA update;
  2. discriminator step — hinge loss on real driving frames against the (detached) reconstructions.

Reproducibility: every random draw of a step comes from seeds derived from (seed, rank, step) and every
sample from (seed, sample number), so ``--resume`` continues exactly where an uninterrupted run would be.
Checkpoints (:mod:`.run_state`) are written every ``checkpoint_minutes``, at the end, and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ..atomic import write_text_atomic
from ..model import MMFA, ModelConfig
from . import losses as L
from .config import TrainConfig
from .dataset import FrameStore, PairDataset, PairSample, ResumableSampler, collate_pairs
from .logbook import Logbook, Preview
from .objective import Objective
from .pose_warmup import warm_up_head_pose
from .run_state import CHECKPOINT_NAME, EMA_NAME, RunState
from .runtime import NO_TIMER, Runtime, StopSignals, Timer, loader_worker_init
from .step import GeneratorStep, TrackedChange, expression_view


@dataclass
class RunOptions:
    run_dir: Path
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: bool = False
    max_steps: int | None = None  # stop after this many steps in total (overrides train.steps when smaller)
    minutes: float | None = None  # stop (and save) after this much wall-clock time …
    started_at: float | None = None  # … counted from this time.time() (default: when training starts)
    vgg_weights: str | None = None
    config_name: str = ""  # recorded in the exported checkpoint's metadata
    data_description: str = ""
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))
    tensorboard: bool = True
    on_step: Callable[[int, dict[str, float]], None] | None = None  # called after every step (tests, GUIs)
    init_from: Path | None = None  # start from the weights of a training checkpoint (full or packed weights-only)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for the random draws of one step on one rank."""
    return int(np.random.SeedSequence([seed, rank, step, 0x4D4D4641]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class Trainer:
    """Builds everything from the configs and a :class:`~.dataset.FrameStore`; :meth:`run` trains."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, store: FrameStore, options: RunOptions,
                 timer: Timer = NO_TIMER):
        self.model_cfg, self.cfg, self.store, self.opt = model_cfg, cfg, store, options
        self.timer = timer
        self.run_dir = Path(options.run_dir)
        self.runtime = Runtime.start(options.device, cfg.amp)
        self.device, self.amp_dtype = self.runtime.device, self.runtime.amp_dtype
        self.timer.device = self.device
        self.state = RunState(model_cfg, cfg, self.device, self.amp_dtype, log=self.log)
        self.g_step = GeneratorStep(self.mmfa, expression_from_augmented=cfg.loss.expression > 0,
                                    pose_edits=(cfg.edit_yaw, cfg.edit_pitch) if cfg.loss.keypoint_flow > 0 else None,
                                    face_template=cfg.template_flow,
                                    render_expression=cfg.render_expression).to(self.device)  # its template buffers
        self.g_step_ddp, self.d_ddp = self.runtime.parallel(self.g_step), self.runtime.parallel(self.discriminator)

        weights = options.vgg_weights or cfg.perceptual_weights
        self.perceptual = L.PerceptualLoss.build(cfg.perceptual_backbone, weights, cfg.perceptual_layers,
                                                 cfg.perceptual_scales)
        self.perceptual.to(self.device)
        if cfg.channels_last and self.perceptual.trunk is not None:
            self.perceptual.to(memory_format=torch.channels_last)
        self.objective = Objective(model_cfg, cfg, self.perceptual, self.discriminator, timer)

        if cfg.uses_landmarks:
            missing = sum(store.landmarks(c) is None for c in store.clips)
            if missing == len(store.clips):
                raise ValueError("train.landmark_expression, anchor_points and pair_choice: motion need landmarks, "
                                 "and the training data has none (prepare it again with `mmfa-studio prepare VIDEOS "
                                 "DATA --landmarks`)")
            if missing:
                self.log(f"landmarks: {missing} of {len(store.clips)} clips have none")
        if cfg.anchor_points and (model_cfg.variant != "hybrid" or not model_cfg.tps_motion):
            raise ValueError("train.anchor_points needs the hybrid variant with model.tps_motion (its 2D spline "
                             "carries the anchors)")
        self.dataset = PairDataset(store, cfg.largest_size(model_cfg), cfg.augment, seed=cfg.seed,
                                   max_gap=cfg.max_frame_gap, landmarks=cfg.uses_landmarks,
                                   candidates=cfg.pair_candidates if cfg.pair_choice == "motion" else 1,
                                   require_landmarks=cfg.anchor_points)
        self.stop_signals = StopSignals()
        self._started = False
        self._t0: float | None = None  # time.monotonic() when this process started training
        self._preview: Preview | None = None
        self.logbook = Logbook(self.runtime, self.log, cfg.batch_size * self.runtime.world)

    # -- what the trainer is made of ----------------------------------------------------------------
    @property
    def mmfa(self) -> MMFA:
        return self.state.mmfa

    @property
    def ema(self) -> MMFA:
        return self.state.ema

    @property
    def discriminator(self) -> torch.nn.Module:
        return self.state.discriminator

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def size(self) -> int:
        return self.state.size

    @property
    def is_main(self) -> bool:
        return self.runtime.is_main

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def log(self, msg: str) -> None:
        if self.is_main:
            self.opt.log(msg)

    def describe(self) -> str:
        params_g = sum(p.numel() for p in self.mmfa.parameters()) / 1e6
        params_d = sum(p.numel() for p in self.discriminator.parameters()) / 1e6
        return (f"device {self.device} × {self.runtime.world} process(es), AMP {self.runtime.amp_name}, batch "
                f"{self.cfg.batch_size}/process, {self.size} px, G {params_g:.2f} M params, D {params_d:.2f} M params; "
                f"perceptual backbone: {self.perceptual.description}; {len(self.store.clips)} clips, "
                f"{sum(c.frames for c in self.store.clips)} frames")

    # -- start and checkpoints ----------------------------------------------------------------------
    def start(self) -> None:
        """Resume (or refuse to overwrite an earlier run); raises FileNotFoundError/FileExistsError/ValueError
        with one-line messages. Called by :meth:`run` when not called before."""
        if self._started:
            return
        self._started = True
        self._t0 = time.monotonic()
        if self.opt.resume:
            if not self.checkpoint_path.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint_path}")
            saved_world = self.state.resume(self.checkpoint_path)
            if saved_world is not None and int(saved_world) != self.runtime.world:
                self.log(f"note: checkpoint was written by {saved_world} processes, resuming with {self.runtime.world}"
                         " (the sample sequence continues, but the per-process split differs)")
            self.log(f"resumed from {self.checkpoint_path} at step {self.step}")
        elif self.checkpoint_path.is_file():
            raise FileExistsError(f"{self.run_dir} already holds a training checkpoint: "
                                  "pass --resume or choose another --out")
        elif self.opt.init_from is not None:
            self.state.init_from(Path(self.opt.init_from))
        if not self.opt.resume and self.cfg.pose_warmup_steps > 0:
            self.warm_up_pose()

    def warm_up_pose(self) -> None:
        """train.pose_warmup_steps of supervised head-pose fitting (see :mod:`.pose_warmup`); the EMA takes the
        result. Every rank runs the same batches; rank 0's result is then broadcast, so DDP replicas are identical."""
        cfg = self.cfg
        dataset = PairDataset(self.store, self.model_cfg.detector_size, cfg.augment, seed=cfg.seed + 7919)
        batches = self._loader(dataset, cfg.pose_warmup_batch, ResumableSampler())  # the same batches on every rank
        self.log(f"pose warm-up: {cfg.pose_warmup_steps} steps × {cfg.pose_warmup_batch} pairs at "
                 f"{self.model_cfg.detector_size} px, lr {cfg.pose_warmup_lr:g}")
        result = warm_up_head_pose(self.mmfa.motion_encoder, batches, cfg.pose_warmup_steps, cfg.pose_warmup_lr,
                                   self.device, self.runtime.autocast, log=self.log if self.is_main else lambda _: None,
                                   log_every=max(1, min(100, cfg.pose_warmup_steps // 10)))
        # DDP broadcast the weights when it was built, before this; kernels may differ per rank
        self.runtime.broadcast_from_main(self.mmfa.motion_encoder)
        self.ema.motion_encoder.load_state_dict(self.mmfa.motion_encoder.state_dict())
        self.log(f"pose warm-up done in {result.seconds:.0f} s: mean angle error {result.first_error_deg:.2f}° → "
                 f"{result.last_error_deg:.2f}°")

    def save_checkpoint(self, reason: str = "") -> None:
        """Atomically write RUNDIR/checkpoint.pt and the EMA inference checkpoint (main process only)."""
        if not self.is_main:
            return
        start = time.monotonic()
        elapsed = time.monotonic() - self._t0 if self._t0 is not None else 0.0
        about = {"config": self.opt.config_name, "data": self.opt.data_description,
                 "perceptual": self.perceptual.description}
        self.state.save(self.run_dir, elapsed, self.runtime.world, about)
        self.log(f"checkpoint at step {self.step} saved to {self.checkpoint_path} and {self.run_dir / EMA_NAME}"
                 f" ({time.monotonic() - start:.1f} s{', ' + reason if reason else ''})")

    # -- one step -----------------------------------------------------------------------------------
    def _loader(self, dataset: PairDataset | None = None, batch_size: int | None = None,
                sampler: ResumableSampler | None = None) -> Iterator[PairSample]:
        """Batches of the training pairs (default: this rank's shard, continuing after the samples already seen)."""
        if sampler is None:
            world = self.runtime.world
            sampler = ResumableSampler(self.runtime.rank, world, start=self.step * self.cfg.batch_size * world)
        workers = self.cfg.num_workers
        loader = DataLoader(
            dataset or self.dataset, batch_size=batch_size or self.cfg.batch_size, sampler=sampler,
            num_workers=workers, collate_fn=collate_pairs, pin_memory=self.device.type == "cuda",
            prefetch_factor=2 if workers else None, persistent_workers=False, worker_init_fn=loader_worker_init,
        )
        return iter(loader)

    def _prepare_batch(self, batch: PairSample) -> PairSample:
        fmt = torch.channels_last if self.cfg.channels_last_generator else torch.contiguous_format

        def move(t: Tensor) -> Tensor:
            t = t.to(self.device, non_blocking=True)
            if t.dtype == torch.uint8:  # images travel as bytes
                t = t.float() / 255.0
            if t.dim() == 4:
                if t.shape[-1] != self.size:
                    t = F.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                      antialias=True)
                t = t.contiguous(memory_format=fmt)
            return t

        return PairSample(*(move(getattr(batch, f)) for f in PairSample.__dataclass_fields__))

    def train_step(self, batch: PairSample) -> dict[str, Tensor]:
        """One generator + discriminator update on a collated batch; returns the unweighted losses (0-dim
        tensors on the device; ``float()`` them when needed)."""
        cfg, t, state = self.cfg, self.timer, self.state
        seed = step_seed(cfg.seed, self.runtime.rank, self.step)
        torch.manual_seed(seed)  # the VAE's reparameterisation noise (all devices)
        gen = torch.Generator().manual_seed(seed)
        state.follow_schedule()
        with t.section("data to device"):
            batch = self._prepare_batch(batch)
            b = batch.source.shape[0]
            warp = L.RandomWarp.random(b, cfg.equivariance_affine, cfg.equivariance_tps, cfg.equivariance_tps_points,
                                       generator=gen, device=self.device)
            warped = warp.warp_image(batch.driving)
            a = cfg.augment
            augmented = expression_view(batch.driving, gen, a.expression_rotation, a.expression_scale,
                                        a.expression_shift, a.expression_colour)
        adversarial = self.objective.adversarial(self.step)

        self.mmfa.train()
        self.discriminator.eval()  # G step: no spectral-norm power iteration, no D gradients
        self.discriminator.requires_grad_(False)
        with self.runtime.autocast():
            with t.section("G forward"):
                tracked = (TrackedChange.of(batch, cfg.landmark_expression, cfg.anchor_points)
                           if cfg.driving_motion == "tracker" else None)
                out = self.g_step_ddp(batch.source, batch.driving, warped, augmented, tracked)
            terms = self.objective.generator_terms(out, batch, warp, adversarial)
        total = terms.weighted_total(self.objective.weights(self.step))

        with t.section("G backward"):
            state.generator_opt.backward(total)
        with t.section("G optimiser + EMA"):
            grad_norm = state.generator_opt.step(clip_norm=cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            state.generator_opt.schedule.step()
            state.update_ema()

        d_loss = None
        if adversarial:
            with t.section("D step"):
                self.discriminator.train()
                self.discriminator.requires_grad_(True)
                with self.runtime.autocast():
                    d_loss = self.objective.discriminator_loss(self.d_ddp, batch.driving, out.image)
                state.discriminator_opt.backward(d_loss)
                state.discriminator_opt.step()
        state.discriminator_opt.schedule.step()

        state.step += 1
        state.samples_seen += b * self.runtime.world
        # Detached 0-dim tensors, left on the device: reading them forces a host sync, done only when logging.
        result = {k: v.detach().float() for k, v in terms.named().items()}
        result["total"] = total.detach().float()
        result["grad_norm"] = grad_norm.detach().float()
        if d_loss is not None:
            result["discriminator"] = d_loss.detach().float()
        self._preview = Preview(batch, out.image.detach(), out.source.keypoints.detach(),
                                 out.render.keypoints.detach())
        return result

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Train until train.steps / --max-steps / --minutes / a signal; returns the final step."""
        self.start()
        cfg, opt = self.cfg, self.opt
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.yaml", yaml.safe_dump(
                {"model": self.model_cfg.to_dict(), "train": cfg.to_dict()}, sort_keys=False))
        self.log(self.describe())
        self.log("loss weights: " + ", ".join(f"{k} {v:g}" for k, v in dataclasses.asdict(cfg.loss).items())
                 + f" (KL annealed over {cfg.kl_anneal_steps} steps)")
        if self.is_main and opt.tensorboard:
            self.logbook.open_tensorboard(self.run_dir, self.step)
        with self.stop_signals.installed():
            stopped_by = self._train_until_stopped()
        self.save_checkpoint(f"stopped by {stopped_by}")
        self.logbook.images(self.step, self._preview)
        self.logbook.close()
        self.log(f"done: step {self.step}, {self.state.samples_seen} samples, "
                 f"{(time.monotonic() - self._t0) / 60:.1f} min this run (stopped by {stopped_by})")
        self.runtime.close()
        return self.step

    def _train_until_stopped(self) -> str:
        """The steps, with logging and periodic checkpoints; returns what stopped them."""
        cfg, opt = self.cfg, self.opt
        last_step = cfg.steps if opt.max_steps is None else min(cfg.steps, opt.max_steps)
        # Wall-clock deadline (time.time()): the CLI counts from its own start, so set-up time is included.
        deadline = None if opt.minutes is None else (opt.started_at or time.time()) + opt.minutes * 60.0
        last_save = time.monotonic()
        self.logbook.start_window()
        batches = None
        try:
            batches = self._loader()
            while self.step < last_step:
                now = time.monotonic()
                stop = self.stop_signals.received is not None or (deadline is not None and time.time() >= deadline)
                save = now - last_save >= cfg.checkpoint_minutes * 60.0
                stop, save = self.runtime.any_rank(stop, save)
                if stop:
                    return self.stop_signals.received or "time limit"
                if save:
                    self.save_checkpoint("periodic")
                    last_save = time.monotonic()
                with self.timer.section("data loading"):
                    wait = time.monotonic()
                    batch = next(batches)
                    data_wait = time.monotonic() - wait
                result = self.train_step(batch)
                if opt.on_step is not None:
                    opt.on_step(self.step, {k: float(v) for k, v in result.items()})
                self.logbook.add(result, data_wait)
                if self.step % cfg.log_every == 0 or self.step == last_step or self.step == 1:
                    self.logbook.report(self.step, self.state.generator_opt.adam.param_groups[0]["lr"],
                                        time.monotonic() - self._t0)
                if cfg.image_every and self.step % cfg.image_every == 0:
                    self.logbook.images(self.step, self._preview)
        except RuntimeError as exc:
            # The stop signal reached a loader worker too (`pkill -f` matches the workers' command line), and the
            # loader's SIGCHLD handler raised this wherever the loop was. Save all the same: at worst the
            # interrupted step's update is in the weights without being counted.
            # Under DDP the other ranks may be inside a collective: saving here could hang, so fail instead.
            if self.stop_signals.received is None or "DataLoader worker" not in str(exc) or self.runtime.distributed:
                raise
            return self.stop_signals.received
        finally:
            del batches  # shuts the loader's workers down before the final checkpoint
        return "steps"


def train(model_cfg: ModelConfig, cfg: TrainConfig, store: FrameStore, options: RunOptions,
          timer: Timer = NO_TIMER) -> int:
    """Build a :class:`Trainer` and run it; returns the final step."""
    return Trainer(model_cfg, cfg, store, options, timer).run()


__all__ = ["CHECKPOINT_NAME", "EMA_NAME", "RunOptions", "Timer", "Trainer", "step_seed", "train"]
