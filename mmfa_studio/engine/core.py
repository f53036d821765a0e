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
from dataclasses import dataclass, field, replace
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
)
from mmfa_studio.face import (
    paste_back as paste_crop_back,
)
from mmfa_studio.model import MMFA, ModelConfig, SourceEncoding, TargetMotion

from ..devices import DEVICES, DeviceError
from ..devices import resolve_device as find_device
from ..motion import SHIFT_FIELDS, TURN_FIELDS, ModelMotion, Motion
from .anchors import SourceAnchors, render_anchors, source_anchors
from .calibration import PoseCalibration
from .errors import EngineError, ModelLoadError, NoFaceFoundError, SourceImageError
from .expression import ExpressionSpace, read_controls
from .target import TargetLayout, pack_targets, target_from_rows

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

    def pose_values(self) -> dict[str, float]:
        """Turns, scale and translation by :class:`Motion`'s field names: this face's absolute pose."""
        return {**dict(zip(TURN_FIELDS, (self.yaw, self.pitch, self.roll))), "scale": self.scale,
                **dict(zip(SHIFT_FIELDS, map(float, self.translation)))}


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
    # With an anchor expression model: the source's tracked mesh anchors and their code (its motion.expression).
    anchors: SourceAnchors | None = field(default=None, repr=False)

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
    """'auto' → CUDA, else Apple MPS, else CPU; an explicit device that is not there is refused (ModelLoadError)."""
    try:
        return find_device(device)
    except DeviceError as exc:
        raise ModelLoadError(str(exc)) from None


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → fp16 on CUDA, bf16 on CPUs with native bf16 (faster there than fp32), else fp32."""
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
    """One loaded model plus a face tracker. Build it with :meth:`load`; its expression latent's tools are
    :attr:`expressions` (:class:`~.expression.ExpressionSpace`)."""

    def __init__(self, model: MMFA, info: CheckpointInfo | None, device: torch.device, precision: str,
                 tracker: FaceTracker | None = None, channels_last: bool | None = None, cache_size: int = 4,
                 cuda_graphs: bool = True):
        self.model = model.eval()
        self.info = info
        self.config: ModelConfig = model.cfg
        self.device = str(device)
        self._device = device
        self.precision = precision
        # channels_last speeds up the 2D convolutions under bf16 on the CPU.
        self.channels_last = (device.type == "cpu" and precision == "bf16") if channels_last is None else channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._tracker = tracker
        self._own_tracker = tracker is None
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple, PreparedSource] = OrderedDict()
        self._cache_size = cache_size
        # On a GPU one render is many tiny kernels, so launch cost dominates: single renders replay a CUDA graph
        # captured per source (falls back to eager if capture fails).
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._graphs: OrderedDict[int, _CudaGraphRender] = OrderedDict()
        try:  # the user's degrees → model angles (engine/calibration.py); identity for a checkpoint without one
            self.pose_calibration = PoseCalibration.from_metadata(info.metadata if info else {})
            controls = read_controls(info.metadata if info else {})
        except ValueError as exc:
            raise ModelLoadError(f"{info.path}: {exc}") from None
        # The dense-anchor expression VAE (``mmfa-studio fit-expression``): where a checkpoint has one, the
        # expression latent users edit is its latent, and renders carry the face's anchors.
        self.anchor_expression = model.anchor_expression
        if self.anchor_expression is not None:
            self.cuda_graphs = False  # the graph captures the keypoint path only
        # The latent's tools (engine/expression.py); photos are read through this engine's face path.
        self.expressions = ExpressionSpace(model, device, self._lock, self._autocast, controls, self.find_face,
                                           lambda image, face: self.read_face_motion(image, face).expression)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str = "auto", precision: str = "auto",
             tracker: FaceTracker | None = None, channels_last: bool | None = None,
             cuda_graphs: bool = True) -> Engine:
        """Load a checkpoint (None → the bundled ``mmfa_studio/assets/mmfa-cpu.safetensors``); ``ModelLoadError`` on
        failure."""
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
        """The size of the expression latent that :class:`Motion`'s ``expression`` sets."""
        return self.expressions.latent_dim

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

    def __enter__(self) -> Engine:
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

    def find_face(self, image: np.ndarray | str | Path, face_index: int | None = None) -> tuple[np.ndarray, Face, str]:
        """(H×W×3 uint8 RGB photo, its face — the largest unless ``face_index`` —, a name for messages);
        ``SourceImageError`` or ``NoFaceFoundError``."""
        array, name = self.load_image(image)
        with self._lock:
            faces = self.tracker.detect(array)
        return array, faces[_pick_face(faces, face_index, name)], name

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
        motion = _face_motion(encoding.motion, encoding.expression.mu, 0)
        anchors = None
        if self.anchor_expression is not None:
            tracked = self.tracker.detect(crop)  # the mesh in the crop's own pixels
            anchors = source_anchors(self.anchor_expression, tracked[0] if tracked else None, self.image_size)
            code = anchors.code if anchors is not None else np.zeros(self.latent_dim, dtype=np.float32)
            motion = replace(motion, expression=code.astype(np.float32))
        return PreparedSource(image=image, crop=crop, transform=transform, faces=faces, face_index=index,
                              motion=motion, encoding=encoding, name=name, anchors=anchors)

    # -- rendering --------------------------------------------------------------------------------------
    def render(self, source: PreparedSource, motion: Motion, paste_back: bool = False,
               keypoint_shift: np.ndarray | None = None) -> RenderedFrame:
        """Render ``source`` under ``motion``; ``InvalidMotionError`` (a ValueError) for out-of-range values.

        A :class:`Motion`'s relative turns are the user's degrees, mapped through :attr:`pose_calibration` so the
        face turns that far; a :class:`ModelMotion`'s are model angles, taken as they are (reenactment's
        tracked turns). ``keypoint_shift``: K×2, moves each posed keypoint in the image plane (normalised units,
        crop width = 2) on top of the motion — a driving face's non-rigid movement (``LandmarkExpression``)."""
        shifts = None if keypoint_shift is None else [keypoint_shift]
        return self.render_batch(source, [motion], paste_back=paste_back, keypoint_shifts=shifts)[0]

    def render_batch(self, source: PreparedSource, motions: Sequence[Motion], paste_back: bool = False,
                     batch_size: int = 8, keypoint_shifts: Sequence[np.ndarray | None] | None = None,
                     anchor_shifts: Sequence[np.ndarray | None] | None = None) -> list[RenderedFrame]:
        """Render many motions (for export), ``batch_size`` at a time through the model; ``keypoint_shifts``:
        one K×2 shift or None per motion; motions as in :meth:`render`."""
        if keypoint_shifts is not None and len(keypoint_shifts) != len(motions):
            raise ValueError(f"{len(keypoint_shifts)} keypoint shifts for {len(motions)} motions")
        for i, motion in enumerate(motions):
            try:
                motion.validate(self.latent_dim)
            except ValueError as exc:
                where = f"motion {i}: " if len(motions) > 1 else ""
                raise InvalidMotionError(f"{where}{exc}") from None
        model_motions = [self.pose_calibration.to_model_motion(m) for m in motions]
        frames: list[RenderedFrame] = []
        if len(motions) == 1 and self.cuda_graphs:
            shift = None if keypoint_shifts is None else keypoint_shifts[0]
            graphed = self._render_graphed(source, model_motions[0], shift)
            if graphed is not None:
                crop, kp = graphed
                full = paste_crop_back(source.image, crop, source.transform) if paste_back else None
                return [RenderedFrame(crop=crop, full=full, keypoints=kp)]
        for start in range(0, len(motions), batch_size):
            chunk = model_motions[start:start + batch_size]
            shifts = None if keypoint_shifts is None else keypoint_shifts[start:start + batch_size]
            moved = None if anchor_shifts is None else anchor_shifts[start:start + batch_size]
            with self._lock, torch.inference_mode():
                anchors = None
                if source.anchors is not None:  # the anchors carry the expression; the keypoints keep the source's
                    latents = [_mixed_latent(source.motion.expression, m) for m in chunk]
                    chunk = [replace(m, expression=None) for m in chunk]
                target = self.target_motion(source, chunk, shifts)
                if source.anchors is not None:
                    anchors = render_anchors(self.anchor_expression, source.anchors, source.encoding.motion, target,
                                             latents, moved)
                with self._autocast():
                    result = self.model.render(source.encoding, target, all_scales=False, anchors=anchors)
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

    def _render_graphed(self, source: PreparedSource, motion: ModelMotion,
                        keypoint_shift: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
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
            return graph(pack_targets(source.motion, [motion], graph.layout, [keypoint_shift]))

    def target_motion(self, source: PreparedSource, motions: Sequence[ModelMotion],
                      keypoint_shifts: Sequence[np.ndarray | None] | None = None) -> TargetMotion:
        """The model-side target (B = len(motions)) for motions of ``source`` in model angles (the eager path;
        the arithmetic is :mod:`.target`'s, shared with the CUDA graph)."""
        layout = TargetLayout.of(source.encoding)
        rows = torch.from_numpy(pack_targets(source.motion, motions, layout, keypoint_shifts)).to(self._device)
        return target_from_rows(rows, layout, source.encoding, self.expressions.decode_latents,
                                with_latent=any(m.expression is not None for m in motions),
                                with_shift=any(o is not None for o in keypoint_shifts or ()))

    # -- reading a face's motion -----------------------------------------------------------------------
    def read_face_motion(self, image: np.ndarray, face: Face) -> FaceMotion:
        """Crop ``face`` from ``image`` and read its pose, scale, translation and expression (no appearance)."""
        crop, _ = self.crop(image, face)
        return self.read_crop_motion(crop)

    def read_crop_motion(self, crop: np.ndarray) -> FaceMotion:
        """Motion of an S×S×3 uint8 model crop (motion encoder + VAE μ only: the cheap path for reenactment)."""
        with self._lock, torch.inference_mode(), self._autocast():
            motion, expression = self.model.encode_motion(self._to_tensor(crop))
        return _face_motion(motion, expression.mu, 0)


def _mixed_latent(own: np.ndarray, motion: Motion) -> np.ndarray | None:
    """The latent a motion shows: z_src + strength·(z − z_src), or None for the source's own expression."""
    if motion.expression is None:
        return None
    z_src = np.asarray(own, dtype=np.float64)
    return (z_src + motion.expression_strength * (np.asarray(motion.expression, dtype=np.float64) - z_src)
            ).astype(np.float32)


class _GraphStep:
    """What a CUDA graph captures for one source: a static packed target row (:mod:`.target`) → (uint8 crop,
    keypoint pixels). Runs anywhere, so tests check it against eager rendering on the CPU."""

    def __init__(self, engine: Engine, source: PreparedSource, device: torch.device):
        self.engine, self.encoding = engine, source.encoding
        self.layout = TargetLayout.of(source.encoding)
        identity = pack_targets(source.motion, [ModelMotion()], self.layout)
        self.row = torch.from_numpy(identity).to(device)  # 1×width: the graph's input, rewritten before each replay

    def target(self) -> TargetMotion:
        """The row's target, taking both steps (latent and shift) whatever the row holds."""
        return target_from_rows(self.row, self.layout, self.encoding, self._decode)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        # cache=False: capture needs autocast's weight cache off (its casts must be part of the graph).
        return self.engine.expressions.decode_latents(z, cache=False)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.target()
        with self.engine._autocast(cache=False):
            result = self.engine.model.render(self.encoding, target, all_scales=False)
        crop = result.image.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return crop, self.engine._keypoint_pixels(result.keypoints)


class _CudaGraphRender:
    """One captured CUDA graph of :class:`_GraphStep` rendering ``source`` (batch 1) from a packed target row.

    The graph reads its input from one static device row and writes the uint8 crop and the keypoints to
    static outputs, so a render is one host→device copy, one replay and two small device→host copies.
    """

    def __init__(self, engine: Engine, source: PreparedSource):
        dev = engine._device
        step = _GraphStep(engine, source, dev)
        self.encoding, self.layout, self.static = step.encoding, step.layout, step.row
        self.host = torch.zeros_like(self.static, device="cpu").pin_memory()
        with torch.inference_mode():
            stream = torch.cuda.Stream(device=dev)
            stream.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm up (cuDNN autotuning, allocator) outside the capture
                    step()
            torch.cuda.current_stream(dev).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.crop, self.keypoints = step()

    def __call__(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            self.host.copy_(torch.from_numpy(row))
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
