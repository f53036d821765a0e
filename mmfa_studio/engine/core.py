"""The animation engine: load a checkpoint, prepare a source photo once, render it under any :class:`Motion`.

    engine = Engine.load()                                   # bundled model, device and precision auto
    source = engine.prepare_source("portrait.jpg")           # detect → crop → encode (cached)
    frame = engine.render(source, Motion(yaw=20, expression_strength=1.0), paste_back=True)
    frame.output, frame.full                                 # D×D×3 and H×W×3 uint8 RGB

The model renders S×S crops (S = its image size, 256). Above that size the engine also renders the crop at the
photo's own resolution (up to :data:`MAX_DETAIL_SIZE`) from the photo's pixels
(:mod:`.detail`), so a face pasted back keeps the photo's detail, and
``frame.output`` is that render at the engine's ``output_size`` (512 by default). ``output_size=S`` is the model's
own, faster output.

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
from functools import cached_property
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
    crop_at,
    crop_box,
    load_image,
    pixel_aligned_box,
)
from mmfa_studio.face import (
    paste_back as paste_crop_back,
)
from mmfa_studio.model import MMFA, ModelConfig, SourceEncoding, TargetMotion

from ..devices import DEVICES, DeviceError, cpu_has_fast_bf16
from ..devices import resolve_device as find_device
from ..motion import SHIFT_FIELDS, TURN_FIELDS, ExpressionControls, ModelMotion, Motion
from .anchors import SourceAnchors, fitted_controls, render_anchors, source_anchors
from .calibration import PoseCalibration
from .detail import DetailParts, detail_tensors, render_detail
from .errors import EngineError, ModelLoadError, NoFaceFoundError, SourceImageError
from .expression import ExpressionSpace, read_controls
from .target import TargetLayout, pack_targets, target_from_rows

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEFAULT_OUTPUT_SIZE = 512
MAX_OUTPUT_SIZE = 1024
MAX_DETAIL_SIZE = 2048  # the render at the photo's resolution is capped here (a 4000-px photo's face is ~2000 px)
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class InvalidMotionError(EngineError, ValueError):
    """A motion value is out of range or the expression latent has the wrong length."""


class InvalidOutputSizeError(EngineError, ValueError):
    """An output size below the model's image size, above :data:`MAX_OUTPUT_SIZE` or not a multiple of 8."""


def check_output_size(size: int, image_size: int) -> int:
    """``size`` as an int when the engine can render at it; :class:`InvalidOutputSizeError` otherwise."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InvalidOutputSizeError(f"output size must be a whole number of pixels, got {size!r}")
    if not image_size <= size <= MAX_OUTPUT_SIZE or size % 8:
        raise InvalidOutputSizeError(f"output size must be a multiple of 8 from {image_size} (the model's) to "
                                     f"{MAX_OUTPUT_SIZE}, got {size}")
    return int(size)


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
    # The model's named expression controls fitted to this face (``anchors.fitted_controls``), or None without.
    controls: ExpressionControls | None = field(default=None, repr=False)
    output_size: int | None = None  # the side of the crops shown and exported (None: the model's, S)
    # Above S: the same crop at the photo's resolution (N×N×3 uint8, N ≤ MAX_DETAIL_SIZE) and its transform;
    # None where the photo's face is no larger than the model's crop.
    detail: np.ndarray | None = field(default=None, repr=False)
    detail_transform: CropTransform | None = field(default=None, repr=False)

    @property
    def output_crop(self) -> np.ndarray:
        """The source's crop at the output size (what a render's :attr:`RenderedFrame.output` is beside)."""
        return _resized(self.crop if self.detail is None else self.detail, self.output_size)

    @property
    def output_transform(self) -> CropTransform:
        """Photo → :attr:`output_crop` pixels."""
        return self.transform.resized(self.output_size or self.transform.size)

    @property
    def pose(self) -> HeadPose:
        return self.motion.pose

    @property
    def expression(self) -> np.ndarray:
        """The source's expression latent z = μ, (Z,)."""
        return self.motion.expression


@dataclass
class RenderedFrame:
    crop: np.ndarray  # S×S×3 uint8 RGB, the model's own render
    full: np.ndarray | None  # H×W×3 uint8 RGB: the sharpest render pasted back into the photo (when asked)
    keypoints: np.ndarray  # K×2 driving keypoints in crop pixels (x, y)
    detail: np.ndarray | None = None  # N×N×3 uint8 RGB, the render at the photo's resolution (PreparedSource)
    output_size: int | None = None  # the side of :attr:`output` (None: S)

    @cached_property
    def output(self) -> np.ndarray:
        """The render at the engine's output size (from ``detail`` where there is one)."""
        return _resized(self.crop if self.detail is None else self.detail, self.output_size)

    @property
    def output_keypoints(self) -> np.ndarray:
        """``keypoints`` in :attr:`output` pixels."""
        factor = (self.output_size or self.crop.shape[0]) / self.crop.shape[0]
        return (np.asarray(self.keypoints) + 0.5) * factor - 0.5


def _resized(image: np.ndarray, size: int | None) -> np.ndarray:
    """A square uint8 image at size × size (itself when it is that size already or ``size`` is None)."""
    if size is None or image.shape[0] == size:
        return image
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)


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
                 cuda_graphs: bool = True, output_size: int | None = DEFAULT_OUTPUT_SIZE):
        self.model = model.eval()
        self.info = info
        self.config: ModelConfig = model.cfg
        if output_size is None or (output_size == DEFAULT_OUTPUT_SIZE and model.cfg.image_size > output_size):
            output_size = model.cfg.image_size  # the model's own size (a larger model's too, by default)
        self.output_size = check_output_size(output_size, model.cfg.image_size)
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
             cuda_graphs: bool = True, output_size: int | None = DEFAULT_OUTPUT_SIZE) -> Engine:
        """Load a checkpoint (None → the bundled ``mmfa_studio/assets/mmfa-cpu.safetensors``); ``ModelLoadError`` on
        failure. ``output_size``: the side of :attr:`RenderedFrame.output` (None: the model's image size, the fast
        path with no render at the photo's resolution); ``InvalidOutputSizeError`` for a size it cannot render."""
        path = Path(checkpoint) if checkpoint is not None else BUNDLED_MODEL
        if checkpoint is None and not path.is_file():
            raise ModelLoadError(f"the bundled model {path} is not there yet; give a checkpoint (--checkpoint)")
        dev = resolve_device(device)
        prec = resolve_precision(precision, dev)
        try:
            model, info = load_model(path, device=dev)
        except CheckpointError as exc:
            raise ModelLoadError(str(exc)) from None
        return cls(model, info, dev, prec, tracker=tracker, channels_last=channels_last, cuda_graphs=cuda_graphs,
                   output_size=output_size)

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
        """The model's S×S crop of ``face`` (the training data's framing, on whole pixels: the crop at the photo's
        resolution, :attr:`PreparedSource.detail`, is its pixels as they are)."""
        return crop_at(image, pixel_aligned_box(crop_box(face)), self.image_size)

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
            box = pixel_aligned_box(transform.box)  # the crop's box (exact: whole pixels)
            side = min(round(box[2]), MAX_DETAIL_SIZE)
            if self.output_size > self.image_size and side > self.image_size:
                detail, detail_transform = crop_at(array, box, side)
                source = replace(source, detail=detail, detail_transform=detail_transform)
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
            source = self._encode(array, resized, transform, [], None, name)
        d = min(max(h, w), MAX_DETAIL_SIZE)
        if self.output_size == s or d <= s:
            return source
        detail = array if (h, w) == (d, d) else cv2.resize(array, (d, d), interpolation=cv2.INTER_AREA)
        matrix = np.array([[d / w, 0, 0.5 * d / w - 0.5], [0, d / h, 0.5 * d / h - 0.5]], dtype=np.float64)
        return replace(source, detail=detail,
                       detail_transform=CropTransform(matrix=matrix, size=d, source_shape=(h, w)))

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
        controls = self.expressions.controls
        if controls is not None and anchors is not None:
            with self._lock:
                controls = fitted_controls(self.anchor_expression, anchors, controls)
        return PreparedSource(image=image, crop=crop, transform=transform, faces=faces, face_index=index,
                              motion=motion, encoding=encoding, name=name, anchors=anchors, controls=controls,
                              output_size=self.output_size)

    # -- rendering --------------------------------------------------------------------------------------
    def render(self, source: PreparedSource, motion: Motion, paste_back: bool = False,
               keypoint_shift: np.ndarray | None = None, detail: bool = True,
               eye_openings: np.ndarray | None = None) -> RenderedFrame:
        """Render ``source`` under ``motion``; ``InvalidMotionError`` (a ValueError) for out-of-range values.

        A :class:`Motion`'s relative turns are the user's degrees, mapped through :attr:`pose_calibration` so the
        face turns that far; a :class:`ModelMotion`'s are model angles, taken as they are (reenactment's
        tracked turns). ``keypoint_shift``: K×2, moves each posed keypoint in the image plane (normalised units,
        crop width = 2) on top of the motion — a driving face's non-rigid movement (``LandmarkExpression``).
        ``detail=False`` skips the render at the photo's resolution (live video: the model's crop is enough).
        ``eye_openings``: (left, right) the eyes' openings (gap over width, as the tracker's anchors measure them;
        NaN: as the motion leaves it) that the lids are moved to after the expression latent, for a source with
        anchors (reenactment's: a driver's blink closes the portrait's eyes by the driver's factor)."""
        shifts = None if keypoint_shift is None else [keypoint_shift]
        openings = None if eye_openings is None else [eye_openings]
        return self.render_batch(source, [motion], paste_back=paste_back, keypoint_shifts=shifts, detail=detail,
                                 eye_openings=openings)[0]

    def render_batch(self, source: PreparedSource, motions: Sequence[Motion], paste_back: bool = False,
                     batch_size: int = 8, keypoint_shifts: Sequence[np.ndarray | None] | None = None,
                     anchor_shifts: Sequence[np.ndarray | None] | None = None, detail: bool = True,
                     eye_openings: Sequence[np.ndarray | None] | None = None) -> list[RenderedFrame]:
        """Render many motions (for export), ``batch_size`` at a time through the model; ``keypoint_shifts`` and
        ``eye_openings``: one each or None per motion, as in :meth:`render`."""
        for name, given in (("keypoint shifts", keypoint_shifts), ("eye openings", eye_openings)):
            if given is not None and len(given) != len(motions):
                raise ValueError(f"{len(given)} {name} for {len(motions)} motions")
        for i, motion in enumerate(motions):
            try:
                motion.validate(self.latent_dim)
            except ValueError as exc:
                where = f"motion {i}: " if len(motions) > 1 else ""
                raise InvalidMotionError(f"{where}{exc}") from None
        model_motions = [self.pose_calibration.to_model_motion(m) for m in motions]
        if not detail and source.detail is not None:
            source = replace(source, detail=None, detail_transform=None)
        frames: list[RenderedFrame] = []
        if len(motions) == 1 and self.cuda_graphs:
            shift = None if keypoint_shifts is None else keypoint_shifts[0]
            graphed = self._render_graphed(source, model_motions[0], shift)
            if graphed is not None:
                crop, kp, parts = graphed
                # the graph keeps the parts it was captured with: use them only where this source has a detail
                detail = None if parts is None or source.detail is None else render_detail(source.detail, parts)
                return [self._frame(source, crop, kp, detail, paste_back)]
        for start in range(0, len(motions), batch_size):
            chunk = model_motions[start:start + batch_size]
            shifts = None if keypoint_shifts is None else keypoint_shifts[start:start + batch_size]
            moved = None if anchor_shifts is None else anchor_shifts[start:start + batch_size]
            openings = None if eye_openings is None else eye_openings[start:start + batch_size]
            with self._lock, torch.inference_mode():
                anchors = None
                if source.anchors is not None:  # the anchors carry the expression; the keypoints keep the source's
                    latents = [_mixed_latent(source.motion.expression, m) for m in chunk]
                    chunk = [replace(m, expression=None) for m in chunk]
                target = self.target_motion(source, chunk, shifts)
                if source.anchors is not None:
                    anchors = render_anchors(self.anchor_expression, source.anchors, source.encoding.motion, target,
                                             latents, moved, openings)
                with self._autocast():
                    result = self.model.render(source.encoding, target, all_scales=False, anchors=anchors)
                crops = self._to_uint8(result.image)
                parts = None if source.detail is None else DetailParts.of(result)
                keypoints = self._keypoints_to_pixels(result.keypoints)
            details = ([None] * len(crops) if parts is None else
                       [render_detail(source.detail, parts, i) for i in range(len(crops))])
            frames += [self._frame(source, crop, kp, detail, paste_back)
                       for crop, kp, detail in zip(crops, keypoints, details)]
        return frames

    @staticmethod
    def _frame(source: PreparedSource, crop: np.ndarray, keypoints: np.ndarray, detail: np.ndarray | None,
               paste_back: bool) -> RenderedFrame:
        full = None
        if paste_back:
            full = (paste_crop_back(source.image, crop, source.transform) if detail is None else
                    paste_crop_back(source.image, detail, source.detail_transform))
        return RenderedFrame(crop=crop, full=full, keypoints=keypoints, detail=detail, output_size=source.output_size)

    def _keypoints_to_pixels(self, keypoints: torch.Tensor) -> np.ndarray:
        """B×K×3 normalised (grid_sample frame, align_corners=False) → B×K×2 crop pixel centres."""
        return self._keypoint_pixels(keypoints).cpu().numpy()

    def _keypoint_pixels(self, keypoints: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        return (keypoints[..., :2].float() + 1.0) * (s / 2.0) - 0.5

    def _render_graphed(self, source: PreparedSource, motion: ModelMotion, keypoint_shift: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, DetailParts | None] | None:
        """(crop, keypoints, the detail render's parts) through the source's CUDA graph, or None when graphs are
        unavailable."""
        with self._lock:
            key = id(source.encoding)
            graph = self._graphs.get(key)
            if (graph is None or graph.encoding is not source.encoding
                    or graph.with_detail != (source.detail is not None)):  # detail on or off: capture again
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
    keypoint pixels, the detail render's parts or None). Runs anywhere, so tests check it against eager rendering
    on the CPU."""

    def __init__(self, engine: Engine, source: PreparedSource, device: torch.device):
        self.engine, self.encoding, self.with_detail = engine, source.encoding, source.detail is not None
        self.layout = TargetLayout.of(source.encoding)
        identity = pack_targets(source.motion, [ModelMotion()], self.layout)
        self.row = torch.from_numpy(identity).to(device)  # 1×width: the graph's input, rewritten before each replay

    def target(self) -> TargetMotion:
        """The row's target, taking both steps (latent and shift) whatever the row holds."""
        return target_from_rows(self.row, self.layout, self.encoding, self._decode)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        # cache=False: capture needs autocast's weight cache off (its casts must be part of the graph).
        return self.engine.expressions.decode_latents(z, cache=False)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor | None] | None]:
        target = self.target()
        with self.engine._autocast(cache=False):
            result = self.engine.model.render(self.encoding, target, all_scales=False)
        crop = result.image.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        parts = detail_tensors(result) if self.with_detail else None
        return crop, self.engine._keypoint_pixels(result.keypoints), parts


class _CudaGraphRender:
    """One captured CUDA graph of :class:`_GraphStep` rendering ``source`` (batch 1) from a packed target row.

    The graph reads its input from one static device row and writes the uint8 crop and the keypoints to
    static outputs, so a render is one host→device copy, one replay and two small device→host copies.
    """

    def __init__(self, engine: Engine, source: PreparedSource):
        dev = engine._device
        step = _GraphStep(engine, source, dev)
        self.encoding, self.layout, self.static = step.encoding, step.layout, step.row
        self.with_detail = step.with_detail
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
                self.crop, self.keypoints, self.parts = step()

    def __call__(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, DetailParts | None]:
        with torch.inference_mode():
            self.host.copy_(torch.from_numpy(row))
            self.static.copy_(self.host, non_blocking=True)
            self.graph.replay()
            parts = None if self.parts is None else DetailParts.from_tensors(self.parts)
            return self.crop[0].cpu().numpy(), self.keypoints[0].cpu().numpy(), parts


def _face_motion(motion, mu: torch.Tensor, i: int) -> FaceMotion:
    return FaceMotion(
        yaw=float(motion.yaw[i]), pitch=float(motion.pitch[i]), roll=float(motion.roll[i]),
        scale=float(motion.scale[i]), translation=motion.translation[i].float().cpu().numpy(),
        expression=mu[i].float().cpu().numpy(),
    )


__all__ = ["Engine", "PreparedSource", "RenderedFrame", "FaceMotion", "InvalidMotionError", "InvalidOutputSizeError",
           "check_output_size", "resolve_device", "resolve_precision", "cpu_has_fast_bf16", "DEVICES", "PRECISIONS",
           "DEFAULT_OUTPUT_SIZE", "MAX_OUTPUT_SIZE", "MAX_DETAIL_SIZE"]
