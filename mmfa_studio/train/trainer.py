"""The MMFA trainer: one process per device, DDP under ``torchrun`` (NCCL on CUDA, gloo on CPU).

A step:
  1. generator step — one forward of every generator-side network (source, driving, a warped copy of the
     driving frame for equivariance, an augmented copy for the expression objective), the losses of
     :mod:`.losses`, backward, clip, Adam; EMA update;
  2. discriminator step — hinge loss on real driving frames against the (detached) reconstructions.

Reproducibility: every random draw of a step comes from seeds derived from (seed, rank, step) and every
sample from (seed, sample number), so ``--resume`` continues exactly where an uninterrupted run would be.
Checkpoints (RUNDIR/checkpoint.pt, torch.save of tensors and plain values, loaded with weights_only=True)
are written atomically every ``checkpoint_minutes``, at the end, and on SIGINT/SIGTERM; the EMA generator
is exported at the same moments as an inference checkpoint (RUNDIR/model_ema.safetensors).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import shutil
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ..atomic import atomic_path, write_text_atomic
from ..checkpoint import save_model
from ..model import MMFA, ModelConfig, MultiScaleDiscriminator
from ..model.dense_motion import add_tps_proposal
from ..model.expression_vae import ExpressionCode
from ..model.keypoints import rotation_matrix
from ..model.landmark_motion import landmark_weights, shift_to_deformation
from ..model.mmfa import SourceEncoding, TargetMotion
from ..model.motion_encoder import HeadMotion
from . import losses as L
from .config import TrainConfig, scaled_model_config
from .dataset import FrameStore, PairDataset, PairSample, ResumableSampler, collate_pairs
from .pose_warmup import warm_up_head_pose
from .visualize import pair_grid

CHECKPOINT_NAME = "checkpoint.pt"
EMA_NAME = "model_ema.safetensors"
CHECKPOINT_FORMAT = "mmfa-studio-train/1"
WEIGHTS_FORMAT = "mmfa-studio-train-weights/1"  # weights only (see pack.py)
# When --init-from adds the spline proposal to a model without one: its starting mask logit. On the stop-9 bundled
# model (validation clips): 10 gives the spline about half of the mask and pose error 9.6° → 2.4° (identity cosine
# 0.95); 12 gives 2.2° (0.92).
TPS_INIT_LOGIT = 10.0


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


# ------------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------------

class Timer:
    """Accumulates wall time per named section; CUDA work is synchronised at each boundary (benchmarks only)."""

    def __init__(self, device: torch.device | None = None, enabled: bool = True):
        self.enabled = enabled
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] += time.perf_counter() - start

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        self.totals.clear()


NO_TIMER = Timer(enabled=False)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for the random draws of one step on one rank."""
    return int(np.random.SeedSequence([seed, rank, step, 0x4D4D4641]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but PyTorch sees no CUDA device")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device`` (None = full fp32)."""
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp: fp16 needs CUDA (use bf16 on CPU)")
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    # auto
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def set_resolution(model: nn.Module, image_size: int, base: ModelConfig) -> None:
    """Switch a model's training resolution in place. Every weight is resolution-independent (convolutions),
    only the ``cfg`` the modules read at run time (image_size, feature_size) changes."""
    cfg = scaled_model_config(base, image_size)
    for module in model.modules():
        if isinstance(getattr(module, "cfg", None), ModelConfig):
            module.cfg = cfg


def expression_view(images: Tensor, generator: torch.Generator, rotation: float, scale: float, shift: float,
                    colour: float) -> Tensor:
    """An augmented copy of each image for the expression objective: in-plane rotation, zoom, shift and
    colour jitter, never a mirror flip (see :func:`losses.expression_invariance_loss`). B×3×H×W → same."""
    b = images.shape[0]
    u = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1)  # noqa: E731 - uniform in [-1, 1]
    angle = torch.deg2rad(u(b) * rotation)
    zoom = 1.0 + u(b) * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, u(b) * shift * 2], -1), torch.stack([sin, cos, u(b) * shift * 2], -1)], 1)
    theta = theta.to(images.device, torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, align_corners=False, padding_mode="reflection")
    bright = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    contrast = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    sat = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    out = out * bright
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    grey = (out * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    out = (out - grey) * sat + grey
    return out.clamp(0, 1).to(images.dtype)


def _split_motion(m: HeadMotion, i: int, b: int) -> HeadMotion:
    s = slice(i * b, (i + 1) * b)
    return HeadMotion(
        yaw=m.yaw[s], pitch=m.pitch[s], roll=m.roll[s], translation=m.translation[s], scale=m.scale[s],
        expression=m.expression[s], pose_logits=None if m.pose_logits is None else m.pose_logits[s],
    )


@dataclass
class TrackedChange:
    """The head's change from each source to its driving frame as the pose and placement labels give it (B pairs)."""

    turn: Tensor  # B×3 (yaw, pitch, roll) degrees
    has_turn: Tensor  # B bool
    zoom: Tensor  # B: driving scale / source scale
    shift: Tensor  # B×2 (x, y) in normalised units
    has_placement: Tensor  # B bool
    # train.landmark_expression: the source's landmarks B×N×2 and their non-rigid movement B×N×2 (normalised)
    landmarks: Tensor | None = None
    landmark_motion: Tensor | None = None
    has_landmarks: Tensor | None = None  # B bool

    @classmethod
    def of(cls, batch: PairSample, landmarks: bool = False) -> "TrackedChange":
        src, drv = batch.source_placement, batch.driving_placement
        extra = (batch.source_landmarks, batch.landmark_motion, batch.has_landmarks) if landmarks else ()
        return cls(batch.driving_pose - batch.source_pose, batch.has_pose, drv[:, 0] / src[:, 0].clamp_min(1e-6),
                   drv[:, 1:] - src[:, 1:], batch.has_placement, *extra)

    def keypoint_shift(self, keypoints: Tensor) -> Tensor | None:
        """B×K×2 image-plane shifts of the source keypoints (B×K×≥2, normalised) by the landmarks' movement;
        None without landmarks."""
        if self.landmark_motion is None:
            return None
        weights = landmark_weights(keypoints[..., :2].float(), self.landmarks.float(), crop_width=2.0)
        return (weights @ self.landmark_motion.float()) * self.has_landmarks[:, None, None]


# ------------------------------------------------------------------------------------------------------
# The generator side as one module (so DDP sees a single forward per step)
# ------------------------------------------------------------------------------------------------------

class GeneratorStep(nn.Module):
    """Runs every generator-side network once per step.

    Inputs (each B×3×H×W): source, driving, warped (driving under the equivariance warp), augmented
    (driving under the expression augmentation). Batched: the motion encoder sees 4B images, the keypoint
    detector 3B.
    """

    def __init__(self, mmfa: MMFA, expression_from_augmented: bool = True, pose_edits: tuple[float, float] | None = None,
                 face_template: bool = False, render_expression: str = "sample"):
        super().__init__()
        self.mmfa = mmfa
        self.expression_from_augmented = expression_from_augmented
        self.render_from_mean = render_expression == "mean"
        self.pose_edits = pose_edits  # (max |yaw|, max |pitch|) of random source edits for the keypoint-flow loss
        self.face_template = face_template and pose_edits is not None
        if self.face_template:
            from ..face.depth import face_template_points

            points, offset = face_template_points()
            self.register_buffer("template_points", torch.from_numpy(points), persistent=False)  # N×3
            self.register_buffer("template_offset", torch.tensor(offset), persistent=False)  # 2

    def forward(self, source: Tensor, driving: Tensor, warped: Tensor, augmented: Tensor,
                tracked: TrackedChange | None = None) -> dict[str, Any]:
        """``tracked``: the labels' change from source to driving, which replaces the encoder's reading of the
        driving pose where known: the driving render moves the source's own pose by it."""
        m, b = self.mmfa, source.shape[0]
        motion = m.motion_encoder(torch.cat([source, driving, warped, augmented]))
        mu, logvar = m.expression_vae.encode(motion.expression)
        z = m.expression_vae.reparameterize(mu, logvar)
        delta_mu = m.expression_vae.decode(mu)  # deterministic: equivariance and the expression objective
        # What rendering uses (the VAE's decoder is trained through it): sampled, or μ's (render_expression).
        delta_used = delta_mu if self.render_from_mean else m.expression_vae.decode(z)
        canonical = m.keypoint_detector(torch.cat([source, driving, warped]))
        part = lambda t, i: t[i * b:(i + 1) * b]  # noqa: E731
        src_m, drv_m, wrp_m = (_split_motion(motion, i, b) for i in range(3))

        src_target = TargetMotion(src_m.yaw, src_m.pitch, src_m.roll, src_m.translation, src_m.scale,
                                  part(delta_used, 0))
        kp_s, jac_s = m.pose_keypoints(part(canonical, 0), src_target)
        source_enc = SourceEncoding(
            image=source, appearance=m.appearance_encoder(source), canonical=part(canonical, 0), motion=src_m,
            expression=ExpressionCode(part(mu, 0), part(logvar, 0), part(z, 0), part(delta_used, 0)),
            keypoints=kp_s, jacobian=jac_s,
        )
        render_delta = part(delta_used, 3) if self.expression_from_augmented else part(delta_used, 1)
        target_delta = render_delta
        angles, translation, scale = (drv_m.yaw, drv_m.pitch, drv_m.roll), drv_m.translation, drv_m.scale
        if tracked is not None:
            turned = (src_m.yaw, src_m.pitch, src_m.roll)
            angles = tuple(torch.where(tracked.has_turn, own + tracked.turn[:, i].to(own.dtype), read)
                           for i, (own, read) in enumerate(zip(turned, angles)))
            placed = tracked.has_placement
            scale = torch.where(placed, src_m.scale * tracked.zoom.to(scale.dtype), scale)
            moved = src_m.translation + F.pad(tracked.shift.to(translation.dtype), (0, 1))  # z stays
            translation = torch.where(placed[:, None], moved, translation)
            # The landmarks' movement (mouth, eyes, brows) moves the keypoints as reenactment moves them. The
            # inputs are detached: this teaches the renderer to follow the shifts, not the keypoints to make them.
            # (The deformation prior sees the model's own δ only: it must not pull δ against the landmarks.)
            shift = tracked.keypoint_shift(kp_s.detach())
            if shift is not None:
                d = lambda t: t.detach().float()  # noqa: E731
                rotation = rotation_matrix(*(d(a) for a in angles))
                target_delta = render_delta + shift_to_deformation(shift, rotation, d(scale)).to(render_delta.dtype)
        target = TargetMotion(*angles, translation, scale, target_delta)
        render = m.render(source_enc, target)
        # The keypoint prior sees the model's own keypoints: landmark shifts that bring two together (a closing
        # mouth) must not push the model's keypoints apart.
        own_keypoints = render.keypoints if target_delta is render_delta else m.pose_keypoints(
            part(canonical, 0), dataclasses.replace(target, delta=render_delta))[0]

        flows = []
        if self.pose_edits is not None:
            # The app's use: the source under a new head pose. No image to compare with, but the dense motion
            # must still carry every keypoint's neighbourhood along (keypoint_flow_loss). Every input is detached:
            # this trains the dense-motion network only. (With gradients into the keypoints, the keypoints and
            # δ chased their own targets and ran away.)
            max_yaw, max_pitch = self.pose_edits
            unit = lambda: torch.rand(b, device=source.device) * 2 - 1  # noqa: E731
            d = lambda t: t.detach()  # noqa: E731
            frozen = dataclasses.replace(source_enc, appearance=d(source_enc.appearance), canonical=d(source_enc.canonical),
                                         keypoints=d(kp_s), jacobian=d(jac_s))
            edit = TargetMotion(d(src_m.yaw) + max_yaw * unit(), d(src_m.pitch) + max_pitch * unit(), d(src_m.roll),
                                d(src_m.translation), d(src_m.scale), d(part(delta_mu, 0)))
            _, kp_e, motion_e = m.estimate_motion(frozen, edit)
            flow_e = _image_flow(motion_e.flow)
            flows.append((flow_e, kp_e, kp_s))
            if self.face_template:
                # The inner face as a rigid template, posed like the source and like the edit: the whole face
                # turns, not only the neighbourhoods of the (central) keypoints.
                flows.append((flow_e, *self._template_pair(src_m, edit)))

        # Equivariance compares the encoder's own readings of the driving frame and its warp.
        kp_d_eq, _ = m.pose_keypoints(
            part(canonical, 1),
            TargetMotion(drv_m.yaw, drv_m.pitch, drv_m.roll, drv_m.translation, drv_m.scale, part(delta_mu, 1)),
        )
        kp_w_eq, _ = m.pose_keypoints(
            part(canonical, 2),
            TargetMotion(wrp_m.yaw, wrp_m.pitch, wrp_m.roll, wrp_m.translation, wrp_m.scale, part(delta_mu, 2)),
        )
        return {
            "output": render.image, "pyramid": render.output.pyramid, "driving_keypoints": render.keypoints,
            "source_keypoints": kp_s, "render_delta": render_delta, "own_driving_keypoints": own_keypoints,
            "canonical_source": part(canonical, 0), "canonical_driving": part(canonical, 1),
            "mu": mu, "logvar": logvar, "delta_mu": delta_mu,
            "equivariance_keypoints": kp_d_eq, "equivariance_warped_keypoints": kp_w_eq,
            "pose": torch.stack([motion.yaw, motion.pitch, motion.roll, torch.log(motion.scale)], -1),  # 4B×4
            "pose_logits": motion.pose_logits, "flows": flows,
        }


    def _template_pair(self, source: HeadMotion, edit: TargetMotion) -> tuple[Tensor, Tensor]:
        """(B×N×2 template points under the edit, B×N×2 the same points under the source's pose).

        Posed about the face centre at the crop's fixed framing (face/depth.py), not with the model's own s and
        t: those live in the learned canonical frame, while the flow is compared in crop coordinates."""
        pts = self.template_points.float()

        def posed(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
            rotation = rotation_matrix(yaw.detach().float(), pitch.detach().float(), roll.detach().float())
            return (pts @ rotation.transpose(1, 2))[..., :2] + self.template_offset

        return posed(edit.yaw, edit.pitch, edit.roll), posed(source.yaw, source.pitch, source.roll)


def _image_flow(flow: Tensor) -> Tensor:
    """B×S×S×2 image-plane flow of either variant (volumetric: the depth-averaged (x, y), as the image warp uses)."""
    return flow if flow.dim() == 4 else flow[..., :2].mean(dim=1)


# ------------------------------------------------------------------------------------------------------
# RNG state (tensors and plain values only, so torch.load(weights_only=True) reads it back)
# ------------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------------

def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every loaded moment tensor its parameter's device, dtype and exact strides.

    Fused CUDA Adam requires params, grads and moments to share dtype, device *and* strides; a resumed run
    failed that check on an H100 while the first run passed, so the loaded moments are rebuilt like their
    parameters instead of trusting what the file and ``load_state_dict`` produce.
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


class Trainer:
    """Builds everything from the configs and a :class:`~.dataset.FrameStore`; :meth:`run` trains."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, store: FrameStore, options: RunOptions,
                 timer: Timer = NO_TIMER):
        self.model_cfg, self.cfg, self.store, self.opt = model_cfg, cfg, store, options
        self.timer = timer
        self.run_dir = Path(options.run_dir)
        self._init_distributed()
        self.device = resolve_device(options.device, self.local_rank)
        self.timer.device = self.device
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.step = 0
        self.samples_seen = 0
        self.elapsed_before = 0.0  # training seconds of earlier runs (resume)

        torch.manual_seed(cfg.seed)
        self.size = cfg.size_at(0, model_cfg)
        self.mmfa = MMFA(scaled_model_config(model_cfg, self.size)).to(self.device)
        install_depth_template(self.mmfa)
        self.discriminator = MultiScaleDiscriminator(model_cfg).to(self.device)
        _converge_spectral_norm(self.discriminator)
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
        self.g_step = GeneratorStep(self.mmfa, expression_from_augmented=cfg.loss.expression > 0,
                                    pose_edits=(cfg.edit_yaw, cfg.edit_pitch) if cfg.loss.keypoint_flow > 0 else None,
                                    face_template=cfg.template_flow,
                                    render_expression=cfg.render_expression).to(self.device)  # its template buffers
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_step_ddp: nn.Module = DDP(self.g_step, device_ids=ids)
            self.d_ddp: nn.Module = DDP(self.discriminator, device_ids=ids)
        else:
            self.g_step_ddp, self.d_ddp = self.g_step, self.discriminator

        fused = {"fused": True} if self.device.type == "cuda" else {}  # one kernel per step instead of many
        self.opt_g = torch.optim.Adam(self.mmfa.parameters(), lr=cfg.lr_generator, betas=cfg.betas,
                                      weight_decay=cfg.weight_decay, **fused)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_discriminator, betas=cfg.betas,
                                      weight_decay=cfg.weight_decay, **fused)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self._lr_factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, self._lr_factor)
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)

        weights = options.vgg_weights or cfg.perceptual_weights
        self.perceptual = L.PerceptualLoss.build(cfg.perceptual_backbone, weights, cfg.perceptual_layers, cfg.perceptual_scales)
        self.perceptual.to(self.device)
        if cfg.channels_last and self.perceptual.trunk is not None:
            self.perceptual.to(memory_format=torch.channels_last)

        self.data_size = cfg.largest_size(model_cfg)
        if cfg.landmark_expression:
            missing = sum(store.landmarks(c) is None for c in store.clips)
            if missing == len(store.clips):
                raise ValueError("train.landmark_expression: the training data has no landmarks (prepare it again "
                                 "with `mmfa-studio prepare VIDEOS DATA --landmarks`)")
            if missing:
                self.log(f"landmark expression: {missing} of {len(store.clips)} clips have no landmarks")
        self.dataset = PairDataset(store, self.data_size, cfg.augment, seed=cfg.seed, max_gap=cfg.max_frame_gap,
                                   landmarks=cfg.landmark_expression)
        self._loader_iter: Iterator[PairSample] | None = None
        self._stop_signal: str | None = None
        self._started = False
        self._last: tuple[PairSample, dict[str, Tensor]] | None = None
        self.writer = None

    # -- setup ----------------------------------------------------------------------------------------
    def _init_distributed(self) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.distributed = world > 1
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world = world
        self._owns_process_group = False
        if self.distributed and not dist.is_initialized():
            use_nccl = self.opt.device != "cpu" and torch.cuda.is_available()
            dist.init_process_group(backend="nccl" if use_nccl else "gloo")
            self._owns_process_group = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, msg: str) -> None:
        if self.is_main:
            self.opt.log(msg)

    def _lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        if self.cfg.schedule == "cosine":
            t = min(1.0, step / max(1, self.cfg.steps))
            return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))
        return warm

    def _loader(self, dataset: PairDataset | None = None, batch_size: int | None = None,
                sampler: ResumableSampler | None = None) -> Iterator[PairSample]:
        """Batches of the training pairs (default: this rank's shard, continuing after the samples already seen)."""
        if sampler is None:
            sampler = ResumableSampler(self.rank, self.world, start=self.step * self.cfg.batch_size * self.world)
        workers = self.cfg.num_workers
        loader = DataLoader(
            dataset or self.dataset, batch_size=batch_size or self.cfg.batch_size, sampler=sampler,
            num_workers=workers, collate_fn=collate_pairs, pin_memory=self.device.type == "cuda",
            prefetch_factor=2 if workers else None, persistent_workers=False, worker_init_fn=_worker_init,
        )
        return iter(loader)

    # -- checkpoints -----------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "elapsed_s": self.elapsed_before + (time.monotonic() - self._t0 if hasattr(self, "_t0") else 0.0),
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "generator": self.mmfa.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "rng": rng_state(),
            "world_size": self.world,
        }

    def save_checkpoint(self, reason: str = "") -> None:
        """Atomically write RUNDIR/checkpoint.pt and the EMA inference checkpoint (main process only)."""
        if not self.is_main:
            return
        start = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)
        self.export_ema()
        if self.cfg.keep_ema_snapshots:
            # checkpoint.pt is overwritten on every save; a numbered EMA per save keeps the weights from before
            # a late divergence, and lets every snapshot be evaluated afterwards.
            # A hard link: the next save replaces model_ema.safetensors by a rename, so the link keeps these bytes.
            snapshot = self.run_dir / f"model_ema-step{self.step:07d}.safetensors"
            with atomic_path(snapshot) as tmp:
                tmp.unlink()
                try:
                    os.link(self.run_dir / EMA_NAME, tmp)
                except OSError:  # a file system without hard links
                    shutil.copyfile(self.run_dir / EMA_NAME, tmp)
        self.log(f"checkpoint at step {self.step} saved to {self.checkpoint_path} and {self.run_dir / EMA_NAME}"
                 f" ({time.monotonic() - start:.1f} s{', ' + reason if reason else ''})")

    def export_ema(self, path: Path | None = None) -> Path:
        """The EMA generator at the config's own resolution, as a safetensors model checkpoint."""
        path = path or self.run_dir / EMA_NAME
        model = MMFA(self.model_cfg)
        model.load_state_dict({k: v.detach().cpu() for k, v in self.ema.state_dict().items()})
        save_model(path, model, {
            "step": self.step, "samples": self.samples_seen, "config": self.opt.config_name,
            "trained_image_size": self.size, "data": self.opt.data_description,
            "perceptual": self.perceptual.description, "ema_decay": self.cfg.ema_decay,
            "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = self._read_state(path)
        self.step = int(state["step"])
        self.samples_seen = int(state.get("samples_seen", 0))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self._apply_resolution(self.cfg.size_at(self.step, self.model_cfg))
        self.mmfa.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        align_optimizer_state(self.opt_g)
        align_optimizer_state(self.opt_d)
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        load_scaler_state(self.scaler_g, state["scaler_g"])
        load_scaler_state(self.scaler_d, state["scaler_d"])
        set_rng_state(state["rng"])
        if int(state.get("world_size", self.world)) != self.world:
            self.log(f"note: checkpoint was written by {state['world_size']} processes, resuming with {self.world}"
                     " (the sample sequence continues, but the per-process split differs)")

    # -- one step --------------------------------------------------------------------------------------
    def _apply_resolution(self, size: int) -> None:
        if size != self.size:
            set_resolution(self.mmfa, size, self.model_cfg)
            set_resolution(self.ema, size, self.model_cfg)
            self.size = size
            self.log(f"training resolution: {size} px")

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _prepare_batch(self, batch: PairSample) -> PairSample:
        fmt = torch.channels_last if self.cfg.channels_last_generator else torch.contiguous_format

        def move(t: Tensor) -> Tensor:
            t = t.to(self.device, non_blocking=True)
            if t.dtype == torch.uint8:  # images travel as bytes
                t = t.float() / 255.0
            if t.dim() == 4:
                if t.shape[-1] != self.size:
                    t = F.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
                t = t.contiguous(memory_format=fmt)
            return t

        return PairSample(*(move(getattr(batch, f)) for f in PairSample.__dataclass_fields__))

    def train_step(self, batch: PairSample) -> dict[str, Tensor]:
        """One generator + discriminator update on a collated batch; returns the unweighted losses (0-dim
        tensors on the device; ``float()`` them when needed)."""
        cfg, w, t = self.cfg, self.cfg.loss, self.timer
        seed = step_seed(cfg.seed, self.rank, self.step)
        torch.manual_seed(seed)  # the VAE's reparameterisation noise (all devices)
        gen = torch.Generator().manual_seed(seed)
        self._apply_resolution(cfg.size_at(self.step, self.model_cfg))
        with t.section("data to device"):
            batch = self._prepare_batch(batch)
            b = batch.source.shape[0]
            warp = L.RandomWarp.random(b, cfg.equivariance_affine, cfg.equivariance_tps, cfg.equivariance_tps_points,
                                       generator=gen, device=self.device)
            warped = warp.warp_image(batch.driving)
            a = cfg.augment
            augmented = expression_view(batch.driving, gen, a.expression_rotation, a.expression_scale,
                                        a.expression_shift, a.expression_colour)
        gan_on = self.step >= cfg.discriminator_start and (w.gan > 0 or w.feature_matching > 0)

        self.mmfa.train()
        self.discriminator.eval()  # G step: no spectral-norm power iteration, no D gradients
        self.discriminator.requires_grad_(False)
        losses: dict[str, Tensor] = {}
        with self._autocast():
            with t.section("G forward"):
                tracked = (TrackedChange.of(batch, cfg.landmark_expression) if cfg.driving_motion == "tracker"
                           else None)
                out = self.g_step_ddp(batch.source, batch.driving, warped, augmented, tracked)
            fake = out["output"]
            with t.section("perceptual"):
                if w.perceptual > 0:
                    losses["perceptual"] = self.perceptual(fake, batch.driving)
                losses["pyramid_l1"] = L.pyramid_l1(out["pyramid"], batch.driving)
            with t.section("D (G step)"):
                if gan_on:
                    with torch.no_grad():
                        d_real = self.discriminator(batch.driving)
                    d_fake = self.discriminator(fake)
                    losses["gan"] = L.generator_hinge_loss(d_fake)
                    losses["feature_matching"] = L.feature_matching_loss(d_real, d_fake)
            with t.section("other losses"):
                losses.update(self._motion_losses(out, warp, batch, b))
        weights = dataclasses.asdict(w)
        weights["kl"] = L.kl_weight(self.step, w.kl, cfg.kl_anneal_start, cfg.kl_anneal_steps)
        total = sum(weights[k] * v for k, v in losses.items())

        with t.section("G backward"):
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(total).backward()
        with t.section("G optimiser + EMA"):
            self.scaler_g.unscale_(self.opt_g)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.mmfa.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
            self.sched_g.step()
            self._update_ema()

        d_loss = None
        if gan_on:
            with t.section("D step"):
                self.discriminator.train()
                self.discriminator.requires_grad_(True)
                with self._autocast():
                    both = self.d_ddp(torch.cat([batch.driving, fake.detach().to(batch.driving.dtype)]))
                    real_out, fake_out = L.split_discriminator_output(both, b)
                    d_loss = L.discriminator_hinge_loss(real_out, fake_out)
                self.opt_d.zero_grad(set_to_none=True)
                self.scaler_d.scale(d_loss).backward()
                self.scaler_d.step(self.opt_d)
                self.scaler_d.update()
        self.sched_d.step()

        self.step += 1
        self.samples_seen += b * self.world
        # Detached 0-dim tensors, left on the device: reading them forces a host sync, done only when logging.
        result = {k: v.detach().float() for k, v in losses.items()}
        result["total"] = total.detach().float()
        result["grad_norm"] = grad_norm.detach().float()
        if d_loss is not None:
            result["discriminator"] = d_loss.detach().float()
        self._last = (batch, {k: out[k].detach() for k in ("output", "source_keypoints", "driving_keypoints")})
        return result

    def _motion_losses(self, out: dict[str, Any], warp: L.RandomWarp, batch: PairSample, b: int) -> dict[str, Tensor]:
        cfg = self.cfg
        pose = out["pose"].float()  # 4B×(yaw, pitch, roll, log s): source, driving, warped, augmented
        drv, wrp = pose[b:2 * b], pose[2 * b:3 * b]
        mu, delta_mu = out["mu"], out["delta_mu"]
        result = {
            "equivariance": L.equivariance_loss(out["equivariance_keypoints"], out["equivariance_warped_keypoints"], warp),
            "equivariance_pose": L.pose_equivariance_loss(*drv.unbind(-1), *wrp.unbind(-1), warp),
            "keypoint_prior": L.keypoint_prior_loss(out["own_driving_keypoints"], cfg.keypoint_min_distance,
                                                    None if self.model_cfg.keypoint_depth == "template" else cfg.depth_target),
            "deformation_prior": L.deformation_prior_loss(out["render_delta"]),
            "canonical": L.canonical_consistency_loss(out["canonical_source"], out["canonical_driving"]),
            "kl": L.kl_loss(out["mu"], out["logvar"], cfg.kl_free_nats),
            "keypoint_flow": (sum(L.keypoint_flow_loss(*f) for f in out["flows"]) / len(out["flows"]) if out["flows"]
                              else out["mu"].new_zeros(())),
            "expression": L.expression_invariance_loss(mu[b:2 * b], mu[3 * b:], delta_mu[b:2 * b], delta_mu[3 * b:]),
        }
        logits = out["pose_logits"][: 2 * b]
        labels = torch.cat([batch.source_pose, batch.driving_pose])
        valid = torch.cat([batch.has_pose, batch.has_pose])
        result["head_pose"] = L.head_pose_loss(logits, labels, valid, self.model_cfg.pose_bins, self.model_cfg.pose_max_degrees)
        result["scale_anchor"] = L.scale_anchor_loss(pose[: 2 * b, 3], cfg.scale_anchor_target)
        return result

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))  # short runs: follow early weights
        if self.step < self.cfg.ema_start:
            decay = 0.0
        params = [p for p in self.mmfa.parameters()]
        ema_params = [p for p in self.ema.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for eb, mb in zip(self.ema.buffers(), self.mmfa.buffers()):
            eb.copy_(mb)

    # -- the loop --------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> list[tuple[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return []
        previous = []

        def handler(signum, _frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self._stop_signal = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, handler)))
        return previous

    def _sync_flags(self, stop: bool, save: bool) -> tuple[bool, bool]:
        """Every rank must stop and checkpoint at the same step (RNG gather, collective shutdown)."""
        if not self.distributed:
            return stop, save
        flags = torch.tensor([float(stop), float(save)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def describe(self) -> str:
        params_g = sum(p.numel() for p in self.mmfa.parameters()) / 1e6
        params_d = sum(p.numel() for p in self.discriminator.parameters()) / 1e6
        amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return (f"device {self.device} × {self.world} process(es), AMP {amp}, batch {self.cfg.batch_size}/process, "
                f"{self.size} px, G {params_g:.2f} M params, D {params_d:.2f} M params; "
                f"perceptual backbone: {self.perceptual.description}; {len(self.store.clips)} clips, "
                f"{sum(c.frames for c in self.store.clips)} frames")

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
            self.load_checkpoint(self.checkpoint_path)
            self.log(f"resumed from {self.checkpoint_path} at step {self.step}")
        elif self.checkpoint_path.is_file():
            raise FileExistsError(f"{self.run_dir} already holds a training checkpoint: pass --resume or choose another --out")
        elif self.opt.init_from is not None:
            self.load_weights(Path(self.opt.init_from))
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
                                   self.device, self._autocast, log=self.log if self.is_main else lambda _: None,
                                   log_every=max(1, min(100, cfg.pose_warmup_steps // 10)))
        if self.distributed:  # DDP broadcast the weights when it was built, before this; kernels may differ per rank
            for tensor in self.mmfa.motion_encoder.state_dict().values():
                dist.broadcast(tensor, src=0)
        self.ema.motion_encoder.load_state_dict(self.mmfa.motion_encoder.state_dict())
        self.log(f"pose warm-up done in {result.seconds:.0f} s: mean angle error {result.first_error_deg:.2f}° → "
                 f"{result.last_error_deg:.2f}°")

    def load_weights(self, path: Path) -> None:
        """Generator, discriminator and EMA weights (and the step, so schedules continue) from a training
        checkpoint or a weights-only file (:mod:`.pack`); optimisers start fresh (with a new LR warm-up).

        An inference checkpoint (.safetensors, e.g. the bundled model) gives the generator and its EMA; the
        discriminator then starts fresh.
        """
        if path.suffix == ".safetensors":
            self._load_inference_weights(path)
            return
        state = self._read_state(path, weights_only_ok=True)
        self.step = int(state["step"])
        self._apply_resolution(self.cfg.size_at(self.step, self.model_cfg))
        self.mmfa.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.log(f"initialised from {path} (step {self.step}; fresh optimisers)")

    def _load_inference_weights(self, path: Path) -> None:
        """The run's architecture takes the file's weights when every tensor fits; settings that hold no weights
        (e.g. max_delta) may differ, and a learned-depth model moves to the template (depth head reset)."""
        from ..checkpoint import CheckpointError, load_model

        try:
            model, info = load_model(path)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None
        file_cfg = info.config
        state = model.state_dict()
        notes = []
        if file_cfg.keypoint_depth == "learned" and self.model_cfg.keypoint_depth == "template":
            # Its depth head predicted absolute depths (in the first bundled model, all saturated at ±1); the
            # residual head starts from zero instead.
            detector = self.mmfa.keypoint_detector
            state["keypoint_detector.depth_template"] = detector.depth_template.detach().cpu().clone()
            state["keypoint_detector.depth.weight"] = torch.zeros_like(state["keypoint_detector.depth.weight"])
            state["keypoint_detector.depth.bias"] = torch.zeros_like(state["keypoint_detector.depth.bias"])
            notes.append("learned depth replaced by the face template, depth head reset")
        if self.model_cfg.tps_motion and not file_cfg.tps_motion:
            prefix = "dense_motion."
            old = {k[len(prefix):]: state.pop(k) for k in list(state) if k.startswith(prefix)}
            grown = add_tps_proposal(old, self.mmfa.dense_motion, TPS_INIT_LOGIT)
            state.update({prefix + k: v for k, v in grown.items()})
            notes.append(f"thin-plate-spline motion proposal added (mask logit {TPS_INIT_LOGIT:g})")
        changed = [k for k in self.model_cfg.differences(file_cfg) if k not in ("image_size", "feature_size")]
        try:
            self.mmfa.load_state_dict(state)
            self.ema.load_state_dict(state)
        except RuntimeError:
            raise ValueError(f"{path} does not fit this run's model (config differs in: {', '.join(changed)})") from None
        self.step = int(info.metadata.get("step", 0))
        self._apply_resolution(self.cfg.size_at(self.step, self.model_cfg))
        if changed:
            notes.append("config changes " + ", ".join(f"{k} {getattr(file_cfg, k)} → {getattr(self.model_cfg, k)}"
                                                       for k in changed))
        note = "".join(f"; {n}" for n in notes)
        self.log(f"initialised generator and EMA from {path} (step {self.step}; fresh discriminator and optimisers{note})")

    def _read_state(self, path: Path, weights_only_ok: bool = False) -> dict[str, Any]:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise ValueError(f"cannot read training checkpoint {path}: {type(exc).__name__}: {exc}") from None
        formats = {CHECKPOINT_FORMAT} | ({WEIGHTS_FORMAT} if weights_only_ok else set())
        if not isinstance(state, dict) or state.get("format") not in formats:
            raise ValueError(f"{path} is not an MMFA Studio training checkpoint")
        if ModelConfig.from_dict(state["model_config"]) != self.model_cfg:  # fields added since read as defaults
            diff = ", ".join(self.model_cfg.differences(state["model_config"]))
            raise ValueError(f"{path} was trained with another model config (differs in: {diff})")
        return state

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
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)
            except Exception as exc:  # noqa: BLE001 - missing or broken tensorboard must not stop training
                self.log(f"tensorboard unavailable ({type(exc).__name__}: {exc}): scalars go to stdout only")
        last_step = cfg.steps if opt.max_steps is None else min(cfg.steps, opt.max_steps)
        # Wall-clock deadline (time.time()): the CLI counts from its own start, so set-up time is included.
        deadline = None if opt.minutes is None else (opt.started_at or time.time()) + opt.minutes * 60.0
        previous = self._install_signal_handlers()
        last_save = time.monotonic()
        window_t, window_steps, data_wait = time.monotonic(), 0, 0.0  # data_wait: time blocked on the loader
        totals: dict[str, Any] = defaultdict(float)
        stopped_by = "steps"
        try:
            self._loader_iter = self._loader()
            while self.step < last_step:
                now = time.monotonic()
                stop = self._stop_signal is not None or (deadline is not None and time.time() >= deadline)
                save = now - last_save >= cfg.checkpoint_minutes * 60.0
                stop, save = self._sync_flags(stop, save)
                if stop:
                    stopped_by = self._stop_signal or "time limit"
                    break
                if save:
                    self.save_checkpoint("periodic")
                    last_save = time.monotonic()
                with self.timer.section("data loading"):
                    wait = time.monotonic()
                    batch = next(self._loader_iter)
                    data_wait += time.monotonic() - wait
                result = self.train_step(batch)
                if opt.on_step is not None:
                    opt.on_step(self.step, {k: float(v) for k, v in result.items()})
                window_steps += 1
                for k, v in result.items():
                    totals[k] = totals[k] + v
                if self.step % cfg.log_every == 0 or self.step == last_step or self.step == 1:
                    means = self._window_means(totals, window_steps)
                    dt = time.monotonic() - window_t
                    if not all(math.isfinite(v) for v in means.values()):
                        raise FloatingPointError(f"non-finite loss by step {self.step}: {means}")
                    self._log_scalars(means, window_steps / dt if dt > 0 else 0.0, data_wait / dt if dt > 0 else 0.0)
                    window_t, window_steps, totals, data_wait = time.monotonic(), 0, defaultdict(float), 0.0
                if self.writer is not None and cfg.image_every and self.step % cfg.image_every == 0:
                    self._log_images()
        except RuntimeError as exc:
            # The stop signal reached a loader worker too (`pkill -f` matches the workers' command line), and the
            # loader's SIGCHLD handler raised this wherever the loop was. Save all the same: at worst the
            # interrupted step's update is in the weights without being counted.
            # Under DDP the other ranks may be inside a collective: saving here could hang, so fail instead.
            if self._stop_signal is None or "DataLoader worker" not in str(exc) or self.distributed:
                raise
            stopped_by = self._stop_signal
        finally:
            for sig, handler in previous:
                signal.signal(sig, handler)
            self._loader_iter = None
        self.save_checkpoint(f"stopped by {stopped_by}")
        if self.writer is not None:
            self._log_images()
            self.writer.close()
        self.log(f"done: step {self.step}, {self.samples_seen} samples, "
                 f"{(time.monotonic() - self._t0) / 60:.1f} min this run (stopped by {stopped_by})")
        if self._owns_process_group:
            dist.barrier()
            dist.destroy_process_group()
        return self.step

    def _window_means(self, totals: dict[str, Any], steps: int) -> dict[str, float]:
        """Per-step means over the logging window and, under DDP, over every process: each rank's losses cover
        only its own shard of the batch, and every rank must see the same values (the non-finite check raises
        on all of them or none). Every rank calls this at the same steps, with the same keys."""
        keys = sorted(totals)
        values = torch.stack([torch.as_tensor(totals[k], dtype=torch.float32, device=self.device).reshape(())
                              for k in keys]) / max(1, steps)
        if self.distributed:
            dist.all_reduce(values)
            values = values / self.world
        return dict(zip(keys, values.tolist()))

    def _log_scalars(self, means: dict[str, float], its: float, data_fraction: float = 0.0) -> None:
        imgs = its * self.cfg.batch_size * self.world
        elapsed = time.monotonic() - self._t0
        main = ["total", "perceptual", "gan", "feature_matching", "equivariance", "keypoint_prior", "keypoint_flow",
                "deformation_prior", "kl", "expression", "head_pose", "scale_anchor", "discriminator"]
        parts = " ".join(f"{k} {means[k]:.4f}" for k in main if k in means)
        lr = self.opt_g.param_groups[0]["lr"]
        self.log(f"step {self.step} | {its:.2f} it/s {imgs:.1f} img/s, waiting for data {100 * data_fraction:.0f} % | "
                 f"{parts} | lr {lr:.2e} | {int(elapsed // 60):02d}:{int(elapsed % 60):02d}")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"loss/{k}", v, self.step)
            self.writer.add_scalar("speed/iterations_per_s", its, self.step)
            self.writer.add_scalar("speed/images_per_s", imgs, self.step)
            self.writer.add_scalar("speed/data_wait_fraction", data_fraction, self.step)
            self.writer.add_scalar("lr/generator", lr, self.step)

    def _log_images(self) -> None:
        if self._last is None or self.writer is None:
            return
        batch, out = self._last
        grid = pair_grid(batch.source, batch.driving, out["output"], out["source_keypoints"], out["driving_keypoints"])
        self.writer.add_image("pairs/source|driving|output|source_kp|output_kp", grid, self.step)
        self.writer.flush()


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
def _converge_spectral_norm(discriminator: nn.Module, iterations: int = 30) -> None:
    """Run spectral norm's power iteration until its σ estimate is good: the G step evaluates D in eval mode
    (no iteration), and a fresh D's random u/v vectors make σ far too small (huge logits)."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    for module in discriminator.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                for _ in range(iterations):
                    setattr(module, hook.name, hook.compute_weight(module, do_power_iteration=True))


def _worker_init(_worker_id: int) -> None:
    # A stop signal sent to the whole process group (Ctrl-C, `kill -- -PGID`, a cluster's preemption) must reach
    # only the main process, which finishes the step, saves and then shuts the workers down; a worker killed
    # first would take the run down with it, unsaved. Its own process group keeps it out of such signals while
    # the loader can still terminate it.
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    # Each data-loader worker decodes and warps two small frames: one thread each is fastest overall.
    torch.set_num_threads(1)
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)


def train(model_cfg: ModelConfig, cfg: TrainConfig, store: FrameStore, options: RunOptions, timer: Timer = NO_TIMER) -> int:
    """Build a :class:`Trainer` and run it; returns the final step."""
    return Trainer(model_cfg, cfg, store, options, timer).run()


__all__ = ["GeneratorStep", "RunOptions", "Timer", "Trainer", "expression_view", "resolve_amp", "resolve_device",
           "set_resolution", "step_seed", "train", "CHECKPOINT_NAME", "EMA_NAME"]
