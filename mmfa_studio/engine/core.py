"""The animation engine: load a checkpoint, prepare a source photo once, render it under any :class:`Motion`.

    engine = Engine.load()                                   # bundled model, device and precision auto
    source = engine.prepare_source("portrait.jpg")           # detect → crop → encode (cached)
    frame = engine.render(source, Motion(yaw=20, expression_strength=1.0), paste_back=True)
    frame.crop, frame.full                                   # S×S×3 and H×W×3 uint8 RGB

Everything model-side happens under ``torch.inference_mode`` (thread-local), behind a lock: one Engine may be
driven from one worker thread (or several, serialised).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmfa_studio.checkpoint import BUNDLED_MODEL, CheckpointError, CheckpointInfo, load_model
from mmfa_studio.face import (
    CropTransform,
    Face,
    FaceTracker,
    HeadPose,
    ImageError,
    create_tracker,
    crop_face,
    load_image,
    paste_back as paste_crop_back,
)
from mmfa_studio.model import MMFA, ModelConfig, SourceEncoding, TargetMotion, interpolate
from mmfa_studio.model.keypoints import rotation_matrix
from mmfa_studio.model.landmark_motion import shift_to_deformation

from .calibration import PoseCalibration
from .errors import EngineError, ModelLoadError, NoFaceFoundError, SourceImageError
from ..motion import INTERPOLATION_MODES, Motion

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class InvalidMotionError(EngineError, ValueError):
    """A motion value is out of range or the expression latent has the wrong length."""


@dataclass(frozen=True)
class FaceMotion:
    """A face's motion as the model reads it: pose (degrees), scale, translation (normalised), expression z = μ."""

    yaw: float
    pitch: float
    roll: float
    scale: float
    translation: np.ndarray  # (3,)
    expression: np.ndarray  # (Z,)

    @property
    def pose(self) -> HeadPose:
        return HeadPose(self.yaw, self.pitch, self.roll)


@dataclass
class PreparedSource:
    """A source photo, cropped and encoded once; render it any number of times."""

    image: np.ndarray  # H×W×3 uint8 RGB, the full photo
    crop: np.ndarray  # S×S×3 uint8 RGB, what the model sees
    transform: CropTransform  # photo → crop pixels (for paste-back)
    faces: list[Face]  # every face found (largest first); empty for prepare_crop
    face_index: int | None  # which of ``faces`` was used
    motion: FaceMotion  # the source's own pose, scale, translation and expression
    encoding: SourceEncoding = field(repr=False)  # model-side cache (appearance, x_c, x_s, …), opaque
    name: str = "<image>"

    @property
    def pose(self) -> HeadPose:
        return self.motion.pose

    @property
    def expression(self) -> np.ndarray:
        """The source's expression latent z = μ, (Z,)."""
        return self.motion.expression


@dataclass
class RenderedFrame:
    crop: np.ndarray  # S×S×3 uint8 RGB
    full: np.ndarray | None  # H×W×3 uint8 RGB pasted back into the photo (when asked)
    keypoints: np.ndarray  # K×2 driving keypoints in crop pixels (x, y)


def _pick_face(faces: list[Face], face_index: int | None, name: str) -> int:
    """Index of the face to use (the largest unless ``face_index``); ``NoFaceFoundError`` naming the image."""
    if not faces:
        raise NoFaceFoundError(f"no face found in {name}")
    index = 0 if face_index is None else face_index
    if not 0 <= index < len(faces):
        raise NoFaceFoundError(f"{name} has {len(faces)} face(s); there is no face number {index}")
    return index


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → CUDA, else Apple MPS, else CPU; an explicit device that is not there is refused."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ModelLoadError(f"unknown device {device!r} (choose {', '.join(DEVICES)})")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("device cuda requested but this PyTorch sees no CUDA GPU")
    if device == "mps" and not has_mps:
        raise ModelLoadError("device mps requested but Apple MPS is not available")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → fp16 on CUDA, bf16 on CPUs with native bf16 (measured ~2.5× faster here), else fp32."""
    if precision not in PRECISIONS:
        raise ModelLoadError(f"unknown precision {precision!r} (choose {', '.join(PRECISIONS)})")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        if device.type == "cpu" and cpu_has_fast_bf16():
            return "bf16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ModelLoadError("fp16 is for GPUs; on the CPU use bf16 or fp32")
    return precision


class Engine:
    """One loaded model plus a face tracker. Build it with :meth:`load`."""

    def __init__(self, model: MMFA, info: CheckpointInfo | None, device: torch.device, precision: str,
                 tracker: FaceTracker | None = None, channels_last: bool | None = None, cache_size: int = 4,
                 cuda_graphs: bool = True):
        self.model = model.eval()
        self.info = info
        self.config: ModelConfig = model.cfg
        self.device = str(device)
        self._device = device
        self.precision = precision
        # channels_last helps the 2D convolutions under bf16 on the CPU (environment notes: 2.3× with bf16).
        self.channels_last = (device.type == "cpu" and precision == "bf16") if channels_last is None else channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._tracker = tracker
        self._own_tracker = tracker is None
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple, PreparedSource] = OrderedDict()
        self._cache_size = cache_size
        # On a GPU one render is ~150 tiny kernels, so launch cost dominates: single renders replay a CUDA graph
        # captured per source (falls back to eager if capture fails).
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._graphs: OrderedDict[int, _CudaGraphRender] = OrderedDict()
        try:  # commanded turns → model angles (engine/calibration.py); identity for a checkpoint without one
            self.pose_calibration = PoseCalibration.from_metadata(info.metadata if info else {})
        except ValueError as exc:
            raise ModelLoadError(f"{info.path}: {exc}") from None

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str = "auto", precision: str = "auto",
             tracker: FaceTracker | None = None, channels_last: bool | None = None,
             cuda_graphs: bool = True) -> "Engine":
        """Load a checkpoint (None → the bundled ``mmfa_studio/assets/mmfa-cpu.safetensors``); ``ModelLoadError`` on failure."""
        path = Path(checkpoint) if checkpoint is not None else BUNDLED_MODEL
        if checkpoint is None and not path.is_file():
            raise ModelLoadError(f"the bundled model {path} is not there yet; give a checkpoint (--checkpoint)")
        dev = resolve_device(device)
        prec = resolve_precision(precision, dev)
        try:
            model, info = load_model(path, device=dev)
        except CheckpointError as exc:
            raise ModelLoadError(str(exc)) from None
        return cls(model, info, dev, prec, tracker=tracker, channels_last=channels_last, cuda_graphs=cuda_graphs)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def tracker(self) -> FaceTracker:
        """The still-photo face tracker (made on first use)."""
        with self._lock:
            if self._tracker is None:
                self._tracker = create_tracker("auto", video=False)
            return self._tracker

    def close(self) -> None:
        with self._lock:
            if self._tracker is not None and self._own_tracker:
                self._tracker.close()
                self._tracker = None
            self._cache.clear()
            self._graphs.clear()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model plumbing ---------------------------------------------------------------------------------
    def _autocast(self, cache: bool = True) -> AbstractContextManager:
        if self.precision == "fp32":
            return nullcontext()
        # CUDA-graph capture needs the autocast weight cache off (its casts must be part of the graph).
        return torch.autocast(device_type=self._device.type, dtype=_DTYPES[self.precision], cache_enabled=cache)

    def _to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        """B×S×S×3 (or S×S×3) uint8 → B×3×S×S float in [0, 1] on the device."""
        if crops.ndim == 3:
            crops = crops[None]
        t = torch.from_numpy(np.ascontiguousarray(crops)).to(self._device).permute(0, 3, 1, 2).float().div_(255.0)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t.contiguous()

    @staticmethod
    def _to_uint8(images: torch.Tensor) -> np.ndarray:
        """B×3×S×S in [0, 1] → B×S×S×3 uint8."""
        return images.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # -- faces ------------------------------------------------------------------------------------------
    def load_image(self, image: np.ndarray | str | Path) -> tuple[np.ndarray, str]:
        """(H×W×3 uint8 RGB, a name for messages); ``SourceImageError`` for unreadable files or bad arrays."""
        if isinstance(image, (str, Path)):
            try:
                return load_image(image), str(image)
            except ImageError as exc:
                raise SourceImageError(str(exc)) from None
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 8:
            raise SourceImageError(f"expected an H×W×3 uint8 RGB image, got {array.dtype} {array.shape}")
        return array, "<image>"

    def detect_faces(self, image: np.ndarray | str | Path) -> list[Face]:
        """Faces in a photo, largest first (to let the user choose one)."""
        array, _ = self.load_image(image)
        with self._lock:
            return self.tracker.detect(array)

    def crop(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, CropTransform]:
        """The model's S×S crop of ``face`` (the training data's framing)."""
        return crop_face(image, face, size=self.image_size)

    # -- sources ----------------------------------------------------------------------------------------
    def prepare_source(self, image: np.ndarray | str | Path, face_index: int | None = None) -> PreparedSource:
        """Load → detect → crop (the largest face, or ``face_index``) → encode once.

        Cached: preparing the same pixels and face again returns the cached source at once.
        Raises ``SourceImageError`` (unreadable) or ``NoFaceFoundError``.
        """
        array, name = self.load_image(image)
        key = (hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest(), array.shape, face_index)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            faces = self.tracker.detect(array)
            index = _pick_face(faces, face_index, name)
            crop, transform = self.crop(array, faces[index])
            source = self._encode(array, crop, transform, faces, index, name)
            self._cache[key] = source
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return source

    def prepare_crop(self, crop: np.ndarray, name: str = "<crop>") -> PreparedSource:
        """A source from an already aligned face crop (resized to S×S, no detection); paste-back returns it."""
        array, _ = self.load_image(crop)
        h, w = array.shape[:2]
        s = self.image_size
        import cv2  # only here: resizing an arbitrary crop

        resized = array if (h, w) == (s, s) else cv2.resize(array, (s, s), interpolation=cv2.INTER_AREA)
        # pixel centres at integers (the face package's convention): x' = (x + 0.5)·s/w − 0.5
        matrix = np.array([[s / w, 0, 0.5 * s / w - 0.5], [0, s / h, 0.5 * s / h - 0.5]], dtype=np.float64)
        transform = CropTransform(matrix=matrix, size=s, source_shape=(h, w))
        with self._lock:
            return self._encode(array, resized, transform, [], None, name)

    def _encode(self, image: np.ndarray, crop: np.ndarray, transform: CropTransform, faces: list[Face],
                index: int | None, name: str) -> PreparedSource:
        with torch.inference_mode(), self._autocast():
            encoding = self.model.encode_source(self._to_tensor(crop))
        return PreparedSource(image=image, crop=crop, transform=transform, faces=faces, face_index=index,
                              motion=_face_motion(encoding.motion, encoding.expression.mu, 0), encoding=encoding,
                              name=name)

    # -- rendering --------------------------------------------------------------------------------------
    def render(self, source: PreparedSource, motion: Motion, paste_back: bool = False,
               keypoint_shift: np.ndarray | None = None, calibrate_pose: bool = True) -> RenderedFrame:
        """Render ``source`` under ``motion``; ``InvalidMotionError`` (a ValueError) for out-of-range values.

        ``keypoint_shift``: K×2, moves each posed keypoint in the image plane (normalised units, crop width = 2)
        on top of the motion — a driving face's non-rigid movement (``LandmarkExpression``).
        ``calibrate_pose``: a relative motion's turns are commands, mapped through :attr:`pose_calibration` so
        the face turns that far; False takes them as model angles (reenactment's tracked turns)."""
        shifts = None if keypoint_shift is None else [keypoint_shift]
        return self.render_batch(source, [motion], paste_back=paste_back, keypoint_shifts=shifts,
                                 calibrate_pose=calibrate_pose)[0]

    def render_batch(self, source: PreparedSource, motions: Sequence[Motion], paste_back: bool = False,
                     batch_size: int = 8, keypoint_shifts: Sequence[np.ndarray | None] | None = None,
                     calibrate_pose: bool = True) -> list[RenderedFrame]:
        """Render many motions (for export), ``batch_size`` at a time through the model; ``keypoint_shifts``:
        one K×2 shift or None per motion; ``calibrate_pose`` as in :meth:`render`."""
        if keypoint_shifts is not None and len(keypoint_shifts) != len(motions):
            raise ValueError(f"{len(keypoint_shifts)} keypoint shifts for {len(motions)} motions")
        for i, motion in enumerate(motions):
            try:
                motion.validate(self.latent_dim)
            except ValueError as exc:
                where = f"motion {i}: " if len(motions) > 1 else ""
                raise InvalidMotionError(f"{where}{exc}") from None
        frames: list[RenderedFrame] = []
        calibration = self.pose_calibration if calibrate_pose else PoseCalibration()
        if len(motions) == 1 and self.cuda_graphs and (keypoint_shifts is None or keypoint_shifts[0] is None):
            graphed = self._render_graphed(source, motions[0], calibration)
            if graphed is not None:
                crop, kp = graphed
                full = paste_crop_back(source.image, crop, source.transform) if paste_back else None
                return [RenderedFrame(crop=crop, full=full, keypoints=kp)]
        for start in range(0, len(motions), batch_size):
            chunk = motions[start:start + batch_size]
            shifts = None if keypoint_shifts is None else keypoint_shifts[start:start + batch_size]
            with self._lock, torch.inference_mode():
                target = self.target_motion(source, chunk, shifts, calibration)
                with self._autocast():
                    result = self.model.render(source.encoding, target, all_scales=False)
                crops = self._to_uint8(result.image)
                keypoints = self._keypoints_to_pixels(result.keypoints)
            for crop, kp in zip(crops, keypoints):
                full = paste_crop_back(source.image, crop, source.transform) if paste_back else None
                frames.append(RenderedFrame(crop=crop, full=full, keypoints=kp))
        return frames

    def _keypoints_to_pixels(self, keypoints: torch.Tensor) -> np.ndarray:
        """B×K×3 normalised (grid_sample frame, align_corners=False) → B×K×2 crop pixel centres."""
        return self._keypoint_pixels(keypoints).cpu().numpy()

    def _keypoint_pixels(self, keypoints: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        return (keypoints[..., :2].float() + 1.0) * (s / 2.0) - 0.5

    def _render_graphed(self, source: PreparedSource, motion: Motion,
                        calibration: PoseCalibration) -> tuple[np.ndarray, np.ndarray] | None:
        """(crop, keypoints) through the source's CUDA graph, or None when graphs are unavailable."""
        with self._lock:
            key = id(source.encoding)
            graph = self._graphs.get(key)
            if graph is None or graph.encoding is not source.encoding:
                try:
                    graph = _CudaGraphRender(self, source)
                except Exception:  # noqa: BLE001 - capture is an optimisation: render eagerly instead
                    self.cuda_graphs = False
                    return None
                self._graphs[key] = graph
                while len(self._graphs) > 2:
                    self._graphs.popitem(last=False)
            self._graphs.move_to_end(key)
            return graph(graph_inputs(source, motion, self.latent_dim, calibration))

    def target_motion(self, source: PreparedSource, motions: Sequence[Motion],
                      keypoint_shifts: Sequence[np.ndarray | None] | None = None,
                      calibration: PoseCalibration = PoseCalibration()) -> TargetMotion:
        """The model-side target (B = len(motions)) for the given motions of ``source``.

        relative: angles (through ``calibration``; the default is the identity) and translation add to the source's, scale
        multiplies it; absolute: taken as is.
        expression: None → the source's own δ; z → δ = decode(z_src + strength·(z − z_src)).
        keypoint shift o (K×2): δ += Rᵀ·(o, 0) / s (``shift_to_deformation``), so x = s·R·(x_c + δ) + t moves by o.
        """
        enc = source.encoding
        dev = self._device
        col = lambda name: torch.tensor([getattr(m, name) for m in motions], dtype=torch.float32, device=dev)  # noqa: E731
        rel = torch.tensor([m.relative for m in motions], device=dev)
        own = enc.motion
        turns = torch.tensor([_model_turns(m, calibration) for m in motions], dtype=torch.float32, device=dev)
        yaw = torch.where(rel, own.yaw.float() + turns[:, 0], turns[:, 0])
        pitch = torch.where(rel, own.pitch.float() + turns[:, 1], turns[:, 1])
        roll = torch.where(rel, own.roll.float() + turns[:, 2], turns[:, 2])
        scale = torch.where(rel, own.scale.float() * col("scale"), col("scale"))
        shift = torch.stack([col("tx"), col("ty"), col("tz")], dim=-1)
        translation = torch.where(rel[:, None], own.translation.float() + shift, shift)
        delta = enc.expression.delta.float().expand(len(motions), -1, -1).clone()
        with_z = [i for i, m in enumerate(motions) if m.expression is not None]
        if with_z:
            z_src = enc.expression.mu.float()  # 1×Z
            z = torch.tensor([motions[i].expression for i in with_z], dtype=torch.float32, device=dev)
            strength = torch.tensor([motions[i].expression_strength for i in with_z], dtype=torch.float32, device=dev)
            z_mix = z_src + strength[:, None] * (z - z_src)
            with self._autocast():
                delta[with_z] = self.model.expression_vae.decode(z_mix).float()
        shifted = [i for i, o in enumerate(keypoint_shifts or []) if o is not None]
        if shifted:
            given = np.stack([keypoint_shifts[i] for i in shifted])
            o = torch.as_tensor(given, dtype=torch.float32, device=dev)  # B×K×2
            rotation = rotation_matrix(yaw[shifted], pitch[shifted], roll[shifted])  # B×3×3
            delta[shifted] += shift_to_deformation(o, rotation, scale[shifted])
        # Same dtype as the cached source so a zero edit reproduces the source keypoints exactly.
        dtype = own.yaw.dtype
        return TargetMotion(yaw=yaw.to(dtype), pitch=pitch.to(dtype), roll=roll.to(dtype),
                            translation=translation.to(own.translation.dtype), scale=scale.to(own.scale.dtype),
                            delta=delta.to(enc.expression.delta.dtype))

    # -- expressions ------------------------------------------------------------------------------------
    def read_face_motion(self, image: np.ndarray, face: Face) -> FaceMotion:
        """Crop ``face`` from ``image`` and read its pose, scale, translation and expression (no appearance)."""
        crop, _ = self.crop(image, face)
        return self.read_crop_motion(crop)

    def read_crop_motion(self, crop: np.ndarray) -> FaceMotion:
        """Motion of an S×S×3 uint8 model crop (motion encoder + VAE μ only: the cheap path for reenactment)."""
        with self._lock, torch.inference_mode(), self._autocast():
            motion, expression = self.model.encode_motion(self._to_tensor(crop))
        return _face_motion(motion, expression.mu, 0)

    def encode_expression(self, image: np.ndarray | str | Path, face_index: int | None = None) -> np.ndarray:
        """The expression latent z = μ (Z,) of the face in a photo (largest face unless ``face_index``)."""
        array, name = self.load_image(image)
        with self._lock:
            faces = self.tracker.detect(array)
        return self.read_face_motion(array, faces[_pick_face(faces, face_index, name)]).expression

    def sample_expression(self, seed: int | None = None) -> np.ndarray:
        """A latent drawn from the VAE prior N(0, I), (Z,); the same seed gives the same latent."""
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return torch.randn(self.latent_dim, generator=generator).numpy().astype(np.float32)

    def interpolate_expressions(self, z0: np.ndarray, z1: np.ndarray, ts: Sequence[float] | np.ndarray,
                                mode: str = "linear") -> np.ndarray:
        """Latents from z0 (t = 0) to z1 (t = 1), N×Z, linear or spherical (``model.interpolate``)."""
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"interpolation mode must be 'linear' or 'slerp', not {mode!r}")
        a = torch.as_tensor(np.asarray(z0, dtype=np.float32).reshape(1, -1))
        b = torch.as_tensor(np.asarray(z1, dtype=np.float32).reshape(1, -1))
        for z in (a, b):
            if z.shape[1] != self.latent_dim:
                raise ValueError(f"an expression latent has {z.shape[1]} values; this model's has {self.latent_dim}")
        t = torch.as_tensor(np.asarray(ts, dtype=np.float32))
        n = t.shape[0]
        return interpolate(a.expand(n, -1), b.expand(n, -1), t, mode).numpy()

    def decode_expression(self, z: np.ndarray) -> np.ndarray:
        """δ (K×3) for a latent z (Z,): the keypoint deformation the expression stands for."""
        with self._lock, torch.inference_mode():
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32).reshape(1, -1), device=self._device)
            return self.model.expression_vae.decode(zt)[0].float().cpu().numpy()

    def expression_reach(self, sigmas: float = 3.0) -> float:
        """How far this model's expression latent can move a face: the largest on-screen keypoint movement, in
        pixels of the model's crop (at keypoint scale 1), that setting one latent to ±``sigmas`` prior standard
        deviations makes against the prior's mean. Under a pixel or two, expression edits are invisible."""
        eye = torch.eye(self.latent_dim, device=self._device) * sigmas
        with self._lock, torch.inference_mode():
            z = torch.cat([eye, -eye, torch.zeros(1, self.latent_dim, device=self._device)])
            delta = self.model.expression_vae.decode(z).float()  # (2Z+1)×K×3
        movement = (delta[:-1, :, :2] - delta[-1:, :, :2]).norm(dim=-1)  # x, y: what shows on screen
        return float(movement.max()) * self.image_size / 2  # normalised units span 2 across the crop


def _model_turns(motion: Motion, calibration: PoseCalibration) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in model degrees: a relative motion's turns go through the calibration."""
    if motion.relative:
        return calibration.to_model(motion.yaw, motion.pitch, motion.roll)
    return motion.yaw, motion.pitch, motion.roll


def graph_inputs(source: PreparedSource, motion: Motion, latent_dim: int,
                 calibration: PoseCalibration = PoseCalibration()) -> np.ndarray:
    """The packed target of one motion for :class:`_CudaGraphRender`: yaw, pitch, roll, scale, t (3), z (Z),
    use_z — the same arithmetic as :meth:`Engine.target_motion`, done on the host."""
    own = source.motion
    values = np.zeros(8 + latent_dim, dtype=np.float64)
    shift = np.array([motion.tx, motion.ty, motion.tz])
    yaw, pitch, roll = _model_turns(motion, calibration)
    if motion.relative:
        values[:4] = (own.yaw + yaw, own.pitch + pitch, own.roll + roll, own.scale * motion.scale)
        values[4:7] = own.translation.astype(np.float64) + shift
    else:
        values[:4] = (yaw, pitch, roll, motion.scale)
        values[4:7] = shift
    if motion.expression is not None:
        z_src = own.expression.astype(np.float64)
        values[7:7 + latent_dim] = z_src + motion.expression_strength * (np.asarray(motion.expression) - z_src)
        values[-1] = 1.0
    return values.astype(np.float32)


class _CudaGraphRender:
    """One captured CUDA graph rendering ``source`` (batch 1) from a packed target (see :func:`graph_inputs`).

    The graph reads its input from one static device buffer and writes the uint8 crop and the keypoints to
    static outputs, so a render is one host→device copy, one replay and two small device→host copies.
    """

    def __init__(self, engine: Engine, source: PreparedSource):
        self.encoding = source.encoding
        model, dev, z_dim = engine.model, engine._device, engine.latent_dim  # noqa: SLF001
        enc = source.encoding
        own = enc.motion
        self.host = torch.zeros(8 + z_dim, dtype=torch.float32).pin_memory()
        self.static = torch.zeros(8 + z_dim, dtype=torch.float32, device=dev)
        self.static.copy_(torch.from_numpy(graph_inputs(source, Motion(), z_dim)))

        def run() -> tuple[torch.Tensor, torch.Tensor]:
            v = self.static
            use_z = v[7 + z_dim:8 + z_dim].view(1, 1, 1)
            with engine._autocast(cache=False):  # noqa: SLF001
                decoded = model.expression_vae.decode(v[7:7 + z_dim].view(1, z_dim)).float()
                delta_src = enc.expression.delta.float()
                delta = delta_src + use_z * (decoded - delta_src)  # use_z = 0 keeps δ_src exactly
                target = TargetMotion(
                    yaw=v[0:1].to(own.yaw.dtype), pitch=v[1:2].to(own.pitch.dtype), roll=v[2:3].to(own.roll.dtype),
                    scale=v[3:4].to(own.scale.dtype), translation=v[4:7].view(1, 3).to(own.translation.dtype),
                    delta=delta.to(enc.expression.delta.dtype))
                result = model.render(enc, target, all_scales=False)
            crop = result.image.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            return crop, engine._keypoint_pixels(result.keypoints)  # noqa: SLF001

        with torch.inference_mode():
            stream = torch.cuda.Stream(device=dev)
            stream.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm up (cuDNN autotuning, allocator) outside the capture
                    run()
            torch.cuda.current_stream(dev).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.crop, self.keypoints = run()

    def __call__(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            self.host.copy_(torch.from_numpy(values))
            self.static.copy_(self.host, non_blocking=True)
            self.graph.replay()
            return self.crop[0].cpu().numpy(), self.keypoints[0].cpu().numpy()


def _face_motion(motion, mu: torch.Tensor, i: int) -> FaceMotion:
    return FaceMotion(
        yaw=float(motion.yaw[i]), pitch=float(motion.pitch[i]), roll=float(motion.roll[i]),
        scale=float(motion.scale[i]), translation=motion.translation[i].float().cpu().numpy(),
        expression=mu[i].float().cpu().numpy(),
    )


__all__ = ["Engine", "PreparedSource", "RenderedFrame", "FaceMotion", "InvalidMotionError", "resolve_device",
           "resolve_precision", "cpu_has_fast_bf16", "DEVICES", "PRECISIONS"]
