"""A run's state: the networks, their optimisers and how far the run has come — built, saved and loaded here.

RUNDIR/checkpoint.pt is ``torch.save`` of tensors and plain values only (format ``mmfa-studio-train/1``), so
``torch.load(weights_only=True)`` reads it back; it is written atomically, and with it the EMA generator as
an inference checkpoint (RUNDIR/model_ema.safetensors), optionally also kept as a numbered snapshot.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..atomic import atomic_path
from ..checkpoint import save_model
from ..model import MMFA, ModelConfig, MultiScaleDiscriminator
from .config import TrainConfig, scaled_model_config
from .surgery import load_inference_weights

CHECKPOINT_NAME = "checkpoint.pt"
EMA_NAME = "model_ema.safetensors"
CHECKPOINT_FORMAT = "mmfa-studio-train/1"
WEIGHTS_FORMAT = "mmfa-studio-train-weights/1"  # weights only (see pack.py)


@dataclass
class Optimiser:
    """One network's Adam, its learning-rate schedule and its fp16 gradient scaler (disabled otherwise)."""

    adam: torch.optim.Adam
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def build(cls, network: nn.Module, lr: float, cfg: TrainConfig, lr_factor: Callable[[int], float],
              device: torch.device, fp16: bool) -> Optimiser:
        fused = {"fused": True} if device.type == "cuda" else {}  # one kernel per step instead of many
        adam = torch.optim.Adam(network.parameters(), lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
        return cls(adam, torch.optim.lr_scheduler.LambdaLR(adam, lr_factor), torch.amp.GradScaler("cuda", enabled=fp16))

    def backward(self, loss: Tensor) -> None:
        self.adam.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def step(self, clip_norm: float | None = None) -> Tensor | None:
        """One update; with ``clip_norm`` the gradients are clipped to that global norm first (inf: measured
        only). Returns the gradient norm before clipping (None without ``clip_norm``)."""
        grad_norm = None
        if clip_norm is not None:
            self.scaler.unscale_(self.adam)
            params = [p for group in self.adam.param_groups for p in group["params"]]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        self.scaler.step(self.adam)
        self.scaler.update()
        return grad_norm

    def state(self, suffix: str) -> dict[str, Any]:
        return {f"opt_{suffix}": self.adam.state_dict(), f"sched_{suffix}": self.schedule.state_dict(),
                f"scaler_{suffix}": self.scaler.state_dict()}

    def load(self, state: dict[str, Any], suffix: str) -> None:
        self.adam.load_state_dict(state[f"opt_{suffix}"])
        align_optimizer_state(self.adam)
        self.schedule.load_state_dict(state[f"sched_{suffix}"])
        load_scaler_state(self.scaler, state[f"scaler_{suffix}"])


class RunState:
    """Everything a training checkpoint holds. ``log``: progress messages (resolution switches, notes)."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None,
                 log: Callable[[str], None] = lambda _msg: None):
        self.model_cfg, self.cfg, self.log = model_cfg, cfg, log
        self.step = 0
        self.samples_seen = 0
        self.elapsed_before = 0.0  # training seconds of earlier runs (resume)

        torch.manual_seed(cfg.seed)
        self.size = cfg.size_at(0, model_cfg)
        self.mmfa = MMFA(scaled_model_config(model_cfg, self.size)).to(device)
        install_depth_template(self.mmfa)
        self.discriminator = MultiScaleDiscriminator(model_cfg).to(device)
        converge_spectral_norm(self.discriminator)
        if cfg.channels_last_generator:
            self.mmfa.to(memory_format=torch.channels_last)
        if cfg.channels_last:
            self.discriminator.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.mmfa).eval().requires_grad_(False)
        parts = dict(self.mmfa.named_children())
        unknown = [name for name in cfg.freeze if name not in parts]
        if unknown:
            raise ValueError(f"train.freeze: unknown part(s) {', '.join(unknown)} (parts: {', '.join(parts)})")
        for name in cfg.freeze:
            parts[name].requires_grad_(False)  # no gradient, so Adam leaves them as loaded

        fp16 = amp_dtype == torch.float16
        self.generator_opt = Optimiser.build(self.mmfa, cfg.lr_generator, cfg, self._lr_factor, device, fp16)
        self.discriminator_opt = Optimiser.build(self.discriminator, cfg.lr_discriminator, cfg, self._lr_factor,
                                                 device, fp16)

    def _lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        if self.cfg.schedule == "cosine":
            t = min(1.0, step / max(1, self.cfg.steps))
            return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))
        return warm

    def follow_schedule(self) -> None:
        """The training resolution of the current step (train.progressive)."""
        size = self.cfg.size_at(self.step, self.model_cfg)
        if size != self.size:
            set_resolution(self.mmfa, size, self.model_cfg)
            set_resolution(self.ema, size, self.model_cfg)
            self.size = size
            self.log(f"training resolution: {size} px")

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))  # short runs: follow early weights
        if self.step < self.cfg.ema_start:
            decay = 0.0
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.mmfa.parameters()), 1.0 - decay)
        for eb, mb in zip(self.ema.buffers(), self.mmfa.buffers()):
            eb.copy_(mb)

    # -- saving --------------------------------------------------------------------------------------
    def state_dict(self, elapsed_s: float, world: int) -> dict[str, Any]:
        """``elapsed_s``: training seconds of this run so far; ``world``: the number of processes."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "elapsed_s": self.elapsed_before + elapsed_s,
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "generator": self.mmfa.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            **self.generator_opt.state("g"), **self.discriminator_opt.state("d"),
            "rng": rng_state(),
            "world_size": world,
        }

    def save(self, run_dir: Path, elapsed_s: float, world: int, about: dict[str, Any]) -> None:
        """Atomically write RUNDIR/checkpoint.pt and the EMA inference checkpoint (with ``about`` in its
        metadata), and with train.keep_ema_snapshots a numbered copy of the latter."""
        run_dir.mkdir(parents=True, exist_ok=True)
        state = self.state_dict(elapsed_s, world)
        with atomic_path(run_dir / CHECKPOINT_NAME) as tmp:
            torch.save(state, tmp)
        self.export_ema(run_dir / EMA_NAME, about)
        if self.cfg.keep_ema_snapshots:
            # checkpoint.pt is overwritten on every save; a numbered EMA per save keeps the weights from before
            # a late divergence, and lets every snapshot be evaluated afterwards.
            # A hard link: the next save replaces model_ema.safetensors by a rename, so the link keeps these bytes.
            snapshot = run_dir / f"model_ema-step{self.step:07d}.safetensors"
            with atomic_path(snapshot) as tmp:
                tmp.unlink()
                try:
                    os.link(run_dir / EMA_NAME, tmp)
                except OSError:  # a file system without hard links
                    shutil.copyfile(run_dir / EMA_NAME, tmp)

    def export_ema(self, path: Path, about: dict[str, Any]) -> Path:
        """The EMA generator at the config's own resolution, as a safetensors model checkpoint."""
        model = MMFA(self.model_cfg)
        model.load_state_dict({k: v.detach().cpu() for k, v in self.ema.state_dict().items()})
        save_model(path, model, {
            "step": self.step, "samples": self.samples_seen, "config": about.get("config", ""),
            "trained_image_size": self.size, "data": about.get("data", ""), "perceptual": about.get("perceptual", ""),
            "ema_decay": self.cfg.ema_decay, "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
        return path

    # -- loading -------------------------------------------------------------------------------------
    def resume(self, path: Path) -> int | None:
        """Everything from a training checkpoint, RNG included; returns the number of processes that wrote it
        (None from a checkpoint that does not say)."""
        state = read_training_state(path, self.model_cfg)
        self.step = int(state["step"])
        self.samples_seen = int(state.get("samples_seen", 0))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.follow_schedule()
        self._load_networks(state)
        self.generator_opt.load(state, "g")
        self.discriminator_opt.load(state, "d")
        set_rng_state(state["rng"])
        return state.get("world_size")

    def init_from(self, path: Path) -> None:
        """Generator, discriminator and EMA weights (and the step, so schedules continue) from a training
        checkpoint or a weights-only file (:mod:`.pack`); optimisers start fresh (with a new LR warm-up).

        An inference checkpoint (.safetensors, e.g. the bundled model) gives the generator and its EMA; the
        discriminator then starts fresh.
        """
        if path.suffix == ".safetensors":
            self.step, note = load_inference_weights(path, self.model_cfg, self.mmfa, self.ema)
            self.follow_schedule()
            self.log(f"initialised generator and EMA from {path} (step {self.step}; fresh discriminator and "
                     f"optimisers{note})")
            return
        state = read_training_state(path, self.model_cfg, weights_only_ok=True)
        self.step = int(state["step"])
        self.follow_schedule()
        self._load_networks(state)
        self.log(f"initialised from {path} (step {self.step}; fresh optimisers)")

    def _load_networks(self, state: dict[str, Any]) -> None:
        self.mmfa.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])


def read_training_state(path: Path, model_cfg: ModelConfig, weights_only_ok: bool = False) -> dict[str, Any]:
    """A training checkpoint (or with ``weights_only_ok`` a packed weights-only file) of ``model_cfg``."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise ValueError(f"cannot read training checkpoint {path}: {type(exc).__name__}: {exc}") from None
    formats = {CHECKPOINT_FORMAT} | ({WEIGHTS_FORMAT} if weights_only_ok else set())
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise ValueError(f"{path} is not an MMFA Studio training checkpoint")
    if ModelConfig.from_dict(state["model_config"]) != model_cfg:  # fields added since read as defaults
        diff = ", ".join(model_cfg.differences(state["model_config"]))
        raise ValueError(f"{path} was trained with another model config (differs in: {diff})")
    return state


# ------------------------------------------------------------------------------------------------------
# Building the networks
# ------------------------------------------------------------------------------------------------------

def set_resolution(model: nn.Module, image_size: int, base: ModelConfig) -> None:
    """Switch a model's training resolution in place. Every weight is resolution-independent (convolutions),
    only the ``cfg`` the modules read at run time (image_size, feature_size) changes."""
    cfg = scaled_model_config(base, image_size)
    for module in model.modules():
        if isinstance(getattr(module, "cfg", None), ModelConfig):
            module.cfg = cfg


def install_depth_template(mmfa: MMFA) -> None:
    """Fill the keypoint detector's face depth template (``keypoint_depth = "template"``) from the face package."""
    if mmfa.cfg.keypoint_depth != "template":
        return
    from ..face.depth import face_depth_map

    template = mmfa.keypoint_detector.depth_template
    size = template.shape[-1]
    with torch.no_grad():
        template.copy_(torch.from_numpy(face_depth_map(size)).view(1, 1, size, size))


@torch.no_grad()
def converge_spectral_norm(discriminator: nn.Module, iterations: int = 30) -> None:
    """Run spectral norm's power iteration until its σ estimate is good: the G step evaluates D in eval mode
    (no iteration), and a fresh D's random u/v vectors make σ far too small (huge logits)."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    for module in discriminator.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                for _ in range(iterations):
                    setattr(module, hook.name, hook.compute_weight(module, do_power_iteration=True))


# ------------------------------------------------------------------------------------------------------
# Optimiser and RNG state (tensors and plain values only, so torch.load(weights_only=True) reads them back)
# ------------------------------------------------------------------------------------------------------

def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every loaded moment tensor its parameter's device, dtype and exact strides.

    Fused CUDA Adam requires params, grads and moments to share dtype, device *and* strides, and moments read
    from a file need not, so they are rebuilt like their parameters instead of trusting what the file and
    ``load_state_dict`` produce.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            for key, value in (state or {}).items():
                if not torch.is_tensor(value):
                    continue
                if key == "step":
                    if group.get("fused") or group.get("capturable"):
                        state[key] = value.to(device=param.device, dtype=torch.float32)
                elif value.shape == param.shape:
                    state[key] = torch.empty_like(param).copy_(value)


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """A disabled scaler (bf16 or fp32 run) saves ``{}``; an fp16 resume of such a run (e.g. ``--amp auto`` on a
    GPU without bf16) starts its scaler fresh instead of failing in ``GradScaler.load_state_dict``."""
    if state:
        scaler.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "EMA_NAME", "WEIGHTS_FORMAT", "Optimiser", "RunState",
           "align_optimizer_state", "converge_spectral_norm", "install_depth_template", "load_scaler_state",
           "read_training_state", "rng_state", "set_resolution", "set_rng_state"]
