"""Reenactment: drive a prepared source with the face in a video or live frames.

Per frame: track the driving face (landmarks, 3D mesh, head pose) → crop it → read its motion (the tracker's pose
and the mesh's anchor expression code by default; the model's motion encoder where those are missing or asked for)
→ turn that into a :class:`ModelMotion` for the source (a driver's turns are model angles: no pose calibration)
→ render.

The settings are one :class:`ReenactSettings`:

* ``mode="relative"`` (default, as LivePortrait): the driving face's *changes* since a neutral reference frame
  are applied to the source — angles and translation add, scale multiplies, and the expression moves in
  latent space: z = z_src + (z_drv − z_ref). The reference is the first frame with a face unless
  :meth:`Reenactor.set_reference` gives one; ``set_reference(None)`` resets it to the next frame.
* ``mode="absolute"``: the driving face's pose and expression are used as they are (cross-identity: the
  source takes the driver's exact head angles).
* ``pose_from`` (relative mode): where the head's movement comes from. "tracker" (default): the face tracker —
  yaw/pitch/roll from its landmarks, and translation and scale from where its rigid landmarks sit
  (:func:`tracked_change`), since the bundled model's motion encoder reads few of a driver's turns and shifts
  (model card); "model": the motion encoder, as in the paper, plus the crop box's movement in the frame (each
  crop is face-centred, so the model alone cannot see the head move across the frame). Absolute mode always
  uses the model's reading.
* ``expression_from`` (relative mode): "tracker" (default): the expression latent's change from the model, and
  the driving landmarks' non-rigid movement (mouth, eyes, brows) moves the source's keypoints
  (:class:`LandmarkExpression`), since the bundled model's expression latent carries almost nothing; with an
  anchor model, the source's lids are then moved to the eye openings the driver's change asks for
  (:meth:`~.expression.ExpressionSpace.following_eyes`), which the latent alone reached only in part;
  "model": the latent alone, as in the paper.
* ``transfer``: "both", "pose" (the source keeps its expression) or "expression" (the source keeps its pose).
* ``follow_position`` (default True): the source's head moves across the frame and zooms as the driver's does.
  False holds it where it is (turns and expression still follow): the renderer moves the head but not the neck
  and collar, so a driver who travels far across the frame tears the portrait's lower face (model card).
* ``smoothing``: None/0 = off, up to 1 = strong; a One-Euro filter per group (angles, scale + translation,
  expression latent, keypoint shifts), causal, so it works live.
* ``paste_back``: each result's frame also carries the render pasted back into the source photo.
* ``detail``: each frame is also rendered at the photo's resolution where the engine's output size asks for it
  (sharp in a large photo; a file's reenactment); off, the model's crop only (a webcam's speed).

:meth:`Reenactor.process` takes one frame; :meth:`Reenactor.process_stream` takes a whole stream and pipelines it:
a second thread decodes and tracks frame n + 1 (MediaPipe, OpenCV and ffmpeg release the GIL) while this one
reads and renders frame n with the model, so the tracker no longer waits for the renderer or the other way round.
Both time each frame and let :class:`~mmfa_studio.runtime.ThreadTuner` choose torch's thread count, which on a
busy machine is fewer threads than cores.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from mmfa_studio.face import (
    CropSmoother,
    Face,
    FaceTracker,
    HeadPose,
    OneEuroSmoother,
    create_tracker,
    crop_at,
    crop_box,
    head_placement,
    nonrigid_motion,
)

from ..model import landmark_motion
from ..motion import PLACEMENT_FIELDS, POSE_FIELDS, SHIFT_FIELDS, TURN_FIELDS, ModelMotion
from ..runtime import frame_thread_tuner
from .core import Engine, FaceMotion, PreparedSource, RenderedFrame
from .errors import NoFaceFoundError

MODES = ("relative", "absolute")
POSE_SOURCES = ("tracker", "model")
EXPRESSION_SOURCES = ("tracker", "model")
TRANSFERS = ("both", "pose", "expression")


@dataclass(frozen=True)
class ReenactSettings:
    """How a driving face moves the source (the module docstring says what each setting does).

    Validated on construction (``ValueError`` naming the setting); change one with :meth:`with_changes`.
    """

    mode: str = "relative"  # MODES
    transfer: str = "both"  # TRANSFERS
    smoothing: float = 0.5  # 0 = off … 1 = strong (None is taken as 0, as the CLI and the app pass it)
    paste_back: bool = False
    pose_from: str = "tracker"  # POSE_SOURCES
    expression_from: str = "tracker"  # EXPRESSION_SOURCES
    follow_position: bool = True
    detail: bool = True  # also render at the photo's resolution (Engine.render's detail); off for live speed

    def __post_init__(self) -> None:
        if self.pose_from not in POSE_SOURCES:
            raise ValueError(f"pose_from must be 'tracker' or 'model', not {self.pose_from!r}")
        if self.expression_from not in EXPRESSION_SOURCES:
            raise ValueError(f"expression_from must be 'tracker' or 'model', not {self.expression_from!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'relative' or 'absolute', not {self.mode!r}")
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be 'both', 'pose' or 'expression', not {self.transfer!r}")
        smoothing = 0.0 if self.smoothing is None else self.smoothing
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing = {smoothing:g} is out of range [0, 1]")
        object.__setattr__(self, "smoothing", float(smoothing))
        object.__setattr__(self, "paste_back", bool(self.paste_back))
        object.__setattr__(self, "follow_position", bool(self.follow_position))
        object.__setattr__(self, "detail", bool(self.detail))

    def with_changes(self, **changes: Any) -> ReenactSettings:
        """These settings with the given ones changed (``ValueError`` for an unknown name or a bad value)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown reenactment setting(s): {', '.join(unknown)}")
        return replace(self, **changes)


@dataclass
class ReenactResult:
    frame: RenderedFrame
    driving_pose: HeadPose | None  # the driving face's pose as read for ``pose_from`` (None: no face)
    driving_expression: np.ndarray | None  # its expression z (Z,)
    face_found: bool
    motion: ModelMotion  # what the source was rendered with (model angles)


class _Tracked(NamedTuple):
    """A tracked driving frame: its face, the crop box (cx, cy, side) and the model's crop of it."""

    face: Face
    box: np.ndarray
    crop: np.ndarray


class _Reading:
    """A driving face: where its crop box sits in the frame, its expression code and, read on first use, the
    model's motion of its crop. With the tracker's pose and the anchor expression (the defaults) the motion
    encoder's reading is needed only where a frame has no tracked pose, so most frames skip it (~4 ms)."""

    def __init__(self, engine: Engine, crop: np.ndarray, box: np.ndarray, face: Face,
                 expression: np.ndarray | None):
        self._engine, self._crop, self._expression = engine, crop, expression
        self.centre = np.asarray(box[:2], dtype=np.float64)  # (2,) crop box centre, frame pixels
        self.size = float(box[2])  # crop box side, frame pixels
        self.face = face

    @functools.cached_property
    def motion(self) -> FaceMotion:
        """The motion encoder's reading of the crop, with this reading's expression code."""
        motion = self._engine.read_crop_motion(self._crop)
        return motion if self._expression is None else replace(motion, expression=self._expression)

    @property
    def expression(self) -> np.ndarray:
        """The expression code (Z,): the tracked mesh's anchor code, else the motion encoder's."""
        return self.motion.expression if self._expression is None else self._expression


def tracked_change(reference: Face, driving: Face, crop_side: float) -> ModelMotion | None:
    """The head's movement from ``reference`` to ``driving`` as the face tracker sees it, as a relative
    :class:`ModelMotion` (tracked turns are model angles) with no expression; None when either face has no
    tracked pose.

    Turns are the difference of the tracked poses; scale is the ratio of the rigid landmarks' fitted scale and
    translation is their centroid's shift (:func:`~mmfa_studio.face.head_placement`) in the model's normalised
    units of the reference crop (one crop width = 2), whose side is ``crop_side`` in the faces' pixels. The
    source crop has the same framing, so the numbers apply to the source as they are.
    """
    if reference.pose is None or driving.pose is None:
        return None
    ref = head_placement(reference.landmarks, reference.pose)
    drv = head_placement(driving.landmarks, driving.pose)
    if ref is None or drv is None:
        return None
    turn = driving.pose.as_array() - reference.pose.as_array()
    shift = 2.0 * (drv.centre - ref.centre) / max(crop_side, 1.0)
    return ModelMotion.clamped(yaw=float(turn[0]), pitch=float(turn[1]), roll=float(turn[2]),
                               scale=drv.scale / ref.scale, tx=float(shift[0]), ty=float(shift[1]), tz=0.0,
                               relative=True)


class LandmarkExpression:
    """Moves a source's keypoints with a driving face's non-rigid landmark motion (mouth, eyes, brows).

    The bundled model's expression latent carries almost nothing (model card), so the tracker's landmarks stand
    in: each keypoint moves by a Gaussian-weighted mean of the movement (:func:`~mmfa_studio.face.nonrigid_motion`)
    of the source's landmarks around it, scaled from the driving head's size to the source's
    (:mod:`mmfa_studio.model.landmark_motion`, which training with ``train.landmark_expression`` uses too).
    """

    KERNEL = landmark_motion.KERNEL  # Gaussian radius, in crop widths
    FAR = landmark_motion.FAR

    def __init__(self, source_face: Face, source_keypoints: np.ndarray, crop_size: int):
        """``source_face`` and ``source_keypoints`` (K×2) in the source crop's pixels."""
        placement = head_placement(source_face.landmarks, source_face.pose) if source_face.pose is not None else None
        if placement is None:
            raise ValueError("the source face has no tracked pose")
        as_batch = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)[None, :, :2])
        weights = landmark_motion.landmark_weights(as_batch(source_keypoints), as_batch(source_face.landmarks),
                                                   crop_size, self.KERNEL, self.FAR)
        self._weights = weights[0].numpy()  # K×N
        self._to_units = 2.0 * placement.scale / crop_size  # head-scale units → normalised units

    @classmethod
    def for_source(cls, engine: Engine, source: PreparedSource,
                   face: Face | None = None) -> LandmarkExpression | None:
        """For ``source`` (its face as found in the photo, or ``face`` in crop pixels); None when no face with
        a pose is found on it."""
        if face is None and source.face_index is not None and source.faces:
            found = source.faces[source.face_index]
            face = Face(box=found.box, landmarks=source.transform.to_crop(found.landmarks), score=found.score,
                        pose=found.pose)
        if face is None:
            faces = engine.tracker.detect(source.crop)
            face = faces[0] if faces else None
        if face is None or face.pose is None:
            return None
        # The engine's own keypoint → pixel convention (grid_sample frame, pixel centres at integers).
        keypoints = engine._keypoints_to_pixels(source.encoding.keypoints)[0]  # noqa: SLF001
        return cls(face, keypoints, engine.image_size)

    def keypoint_shift(self, reference: Face, driving: Face) -> np.ndarray | None:
        """K×2 keypoint shift (normalised units) for the driving face's movement since ``reference``; None
        when it cannot be measured (see :func:`~mmfa_studio.face.nonrigid_motion`)."""
        movement = nonrigid_motion(reference, driving)
        if movement is None or len(movement) != self._weights.shape[1]:
            return None
        return (self._weights @ movement) * self._to_units


def _min_cutoff(smoothing: float) -> float:
    """smoothing ∈ (0, 1] → One-Euro min cut-off (Hz): 0.5 → 1 Hz, 1 → 0.1 Hz; lighter below 0.5."""
    return 10.0 ** (1.0 - 2.0 * smoothing)


# Each group of a driver's motion is smoothed on its own, with a One-Euro speed coefficient (beta, in the group's
# units per second) and the cut-off of its speed estimate (Hz): slow drift is damped at the shared cut-off, and a
# fast move raises the cut-off and passes with little lag. A blink lasts a tenth of a second and speech moves the
# mouth several times a second: with beta 2 for the eyes and 0.5 for the expression code, default smoothing cut
# the eyes' following of a blink from gain 0.79 to 0.50 and the mouth's during speech from r 0.96 to 0.86 (the
# model card has the figures), without steadier eyes or mouth in still stretches.
SMOOTHING_GROUPS: dict[str, tuple[float, float]] = {
    "turns": (0.02, 1.0),  # degrees
    "placement": (1.0, 1.0),  # log scale and shift
    "expression": (5.0, 1.0),  # the expression code (σ units)
    "keypoint_shift": (1.0, 1.0),  # the landmarks' keypoint movement
    "eyes": (30.0, 3.0),  # the eyes' openings (gap over width)
}


def motion_smoothers(smoothing: float) -> dict[str, OneEuroSmoother]:
    """One smoother per :data:`SMOOTHING_GROUPS` group for a ``smoothing`` strength in (0, 1]."""
    cutoff = _min_cutoff(smoothing)
    return {name: OneEuroSmoother(cutoff, beta=beta, d_cutoff=speed_cutoff)
            for name, (beta, speed_cutoff) in SMOOTHING_GROUPS.items()}


class Reenactor:
    """Drive ``source`` with driving frames. Not thread-safe: use from the engine's worker thread.

    ``settings``: a :class:`ReenactSettings` (default: the defaults); keyword arguments named after its fields
    change those (``Reenactor(engine, source, smoothing=None)``), which is how callers written before
    ``ReenactSettings`` still construct one. ``tracker``: a video-mode face tracker (default: a new MediaPipe
    tracker in tracking mode, closed by :meth:`close`). ``fps``: the frame rate used as the smoothing clock when
    :meth:`process` gets no timestamp.
    """

    def __init__(self, engine: Engine, source: PreparedSource, settings: ReenactSettings | None = None, *,
                 tracker: FaceTracker | None = None, fps: float = 30.0, **changes: Any):
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.engine, self.source = engine, source
        self.fps = float(fps)
        self._tracker = tracker
        self._own_tracker = tracker is None
        self._reference: _Reading | None = None
        self._frame_index = 0
        self._last: ReenactResult | None = None
        self._threads = frame_thread_tuner()  # torch's thread count for this stream, by measured frame time
        self.settings = ReenactSettings()
        self.configure(settings, **changes)

    def configure(self, settings: ReenactSettings | None = None, **changes: Any) -> None:
        """Apply new settings live: ``settings`` (default: the current ones) with ``changes`` (setting names →
        values; ``smoothing=None`` turns smoothing off). The tracker and the neutral reference are kept;
        smoothing restarts. ``ValueError`` for a bad setting, which leaves the current ones in place."""
        self.settings = (settings or self.settings).with_changes(**changes)
        smoothing = self.settings.smoothing
        self._smoothers = motion_smoothers(smoothing) if smoothing > 0 else {}
        self._crop_smoother = CropSmoother() if smoothing > 0 else None

    # Read-only views of the settings, for callers that read them one by one.
    mode = property(lambda self: self.settings.mode)
    transfer = property(lambda self: self.settings.transfer)
    smoothing = property(lambda self: self.settings.smoothing)
    paste_back = property(lambda self: self.settings.paste_back)
    pose_from = property(lambda self: self.settings.pose_from)
    expression_from = property(lambda self: self.settings.expression_from)
    follow_position = property(lambda self: self.settings.follow_position)

    @property
    def tracker(self) -> FaceTracker:
        if self._tracker is None:
            self._tracker = create_tracker("auto", video=True, max_faces=1)
        return self._tracker

    def close(self) -> None:
        self._threads.restore()
        if self._tracker is not None and self._own_tracker:
            self._tracker.close()
            self._tracker = None

    def __enter__(self) -> Reenactor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reference --------------------------------------------------------------------------------------
    def set_reference(self, frame_rgb: np.ndarray | None) -> None:
        """Use this frame's face as the neutral reference (relative mode); ``None``: the next frame's face.

        Also restarts the smoothing. ``NoFaceFoundError`` if the given frame has no face.
        """
        self._reset_smoothing()
        if frame_rgb is None:
            self._reference = None
            return
        reading = self._read(frame_rgb)
        if reading is None:
            raise NoFaceFoundError("no face in the reference frame")
        self._reference = reading

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    def _reset_smoothing(self) -> None:
        for smoother in self._smoothers.values():
            smoother.reset()
        if self._crop_smoother is not None:
            self._crop_smoother.reset()

    # -- per frame --------------------------------------------------------------------------------------
    def _read(self, frame: np.ndarray, t: float | None = None) -> _Reading | None:
        return self._read_tracked(self._track(frame, t))

    def _track(self, frame: np.ndarray, t: float | None) -> _Tracked | None:
        """The tracker's part of reading a frame (no model): its face and the model's crop of it. In frame order
        (the crop smoother is causal), on the stream's tracking thread when pipelined."""
        faces = self.tracker.detect(frame)
        if not faces:
            return None
        face = faces[0]
        box = crop_box(face)  # (cx, cy, side): the training framing
        if self._crop_smoother is not None and t is not None:
            box = self._crop_smoother(box, t)  # a steady crop keeps the model's reading steady
        crop, _ = crop_at(frame, box, self.engine.image_size)
        return _Tracked(face, box, crop)

    def _read_tracked(self, tracked: _Tracked | None) -> _Reading | None:
        """The model's part of reading a frame: its expression code (the motion encoder's reading of the crop is
        taken when first asked for)."""
        if tracked is None:
            return None
        face, box, crop = tracked
        code = None
        if self.engine.anchor_expression is not None:  # the expression is the tracked mesh's, through the anchor VAE
            code = self.engine.expressions.of_face(face)
            if code is None:  # no mesh this frame: no change of expression
                code = (self._reference.expression if self._reference is not None else
                        self.source.motion.expression)
        return _Reading(self.engine, crop, box, face, code)

    def process(self, frame_rgb: np.ndarray, timestamp: float | None = None) -> ReenactResult:
        """Render the source driven by one H×W×3 uint8 RGB frame.

        ``timestamp`` (seconds) clocks the smoothing; by default frame n is at n / fps. With no face in the
        frame the last result is returned again (``face_found=False``).
        """
        start = time.perf_counter()
        t = self._next_time(timestamp)
        result = self._render_reading(self._read(frame_rgb, t), t)
        self._threads.record(time.perf_counter() - start)
        return result

    def process_stream(self, frames: Iterable[np.ndarray], timestamps: Iterable[float] | None = None
                       ) -> Iterator[ReenactResult]:
        """:meth:`process` for each frame of ``frames`` in order, pipelined: the next frame is taken from
        ``frames`` (decoded) and tracked on a second thread while this one renders. ``timestamps``: one per
        frame (seconds), else frame n is at n / fps. Stopping the iteration early is safe."""
        times = iter(timestamps) if timestamps is not None else None

        def track_next(source: Iterator[np.ndarray]) -> tuple[_Tracked | None, float] | None:
            frame = next(source, None)
            if frame is None:
                return None
            timestamp = None if times is None else next(times, None)
            if times is not None and timestamp is None:  # (a StopIteration here would surface as a RuntimeError)
                raise ValueError("process_stream: fewer timestamps than frames")
            t = self._next_time(timestamp)
            return self._track(frame, t), t

        source = iter(frames)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmfa-track") as pool:
            pending: Future = pool.submit(track_next, source)
            try:
                while True:
                    start = time.perf_counter()  # the frame's time in here: waiting for its tracking, rendering
                    if (item := pending.result()) is None:
                        break
                    pending = pool.submit(track_next, source)  # frame n + 1 while frame n renders
                    tracked, t = item
                    result = self._render_reading(self._read_tracked(tracked), t)
                    self._threads.record(time.perf_counter() - start)
                    yield result
            finally:
                pending.cancel()
                if not pending.cancelled():
                    pending.exception()  # let a running track finish before the tracker may close

    def _next_time(self, timestamp: float | None) -> float:
        t = self._frame_index / self.fps if timestamp is None else float(timestamp)
        self._frame_index += 1
        return t

    def _render_reading(self, reading: _Reading | None, t: float) -> ReenactResult:
        if reading is None:
            if self._last is None:
                rendered = self.engine.render(self.source, ModelMotion(), paste_back=self.paste_back,
                                              detail=self.settings.detail)
                self._last = ReenactResult(rendered, None, None, False, ModelMotion())
            return ReenactResult(self._last.frame, None, None, False, self._last.motion)
        if self._reference is None:
            self._reference = reading
        motion, shift, eyes = self._smooth(self.motion_for(reading), self.keypoint_shift_for(reading),
                                           self.eye_openings_for(reading), t)
        # A ModelMotion: the driver's turns are model angles, as the model was trained to take them.
        rendered = self.engine.render(self.source, motion, paste_back=self.paste_back, keypoint_shift=shift,
                                      detail=self.settings.detail, eye_openings=eyes)
        driving_pose = reading.face.pose if self._tracker_moves(reading) else reading.motion.pose
        self._last = ReenactResult(rendered, driving_pose, reading.expression, True, motion)
        return self._last

    def _tracker_moves(self, reading: _Reading) -> bool:
        """Whether this reading's head movement comes from the tracker (relative mode, both poses tracked)."""
        ref = self._reference
        return (self.mode == "relative" and self.pose_from == "tracker" and ref is not None
                and reading.face.pose is not None and ref.face.pose is not None)

    def motion_for(self, reading: _Reading) -> ModelMotion:
        """The source's motion for one driving reading (before smoothing)."""
        src = self.source.motion
        if self.mode == "absolute":
            pose = reading.motion.pose_values()
            z = reading.expression
            relative = False
        else:
            ref = self._reference
            assert ref is not None
            tracked = tracked_change(ref.face, reading.face, ref.size) if self._tracker_moves(reading) else None
            if tracked is not None:
                pose = {name: getattr(tracked, name) for name in POSE_FIELDS}
            else:
                d, r = reading.motion, ref.motion  # the motion encoder's readings
                # The crop box's own motion in the frame, in crop widths; the source crop has the same framing,
                # so it maps straight onto the source's normalised units (crop width = 2).
                box_shift = 2.0 * (reading.centre - ref.centre) / max(ref.size, 1.0)
                turn = d.pose.as_array() - r.pose.as_array()
                shift = d.translation - r.translation + np.array([box_shift[0], box_shift[1], 0.0])
                pose = {**dict(zip(TURN_FIELDS, map(float, turn))),
                        "scale": (d.scale / r.scale) * (reading.size / max(ref.size, 1.0)),
                        **dict(zip(SHIFT_FIELDS, map(float, shift)))}
            z = src.expression + (reading.expression - ref.expression)
            if src.expression is not None and (followed := self.engine.expressions.relative(
                    src.expression, ref.face, reading.face, self.source.anchors)) is not None:
                z = followed  # the anchor latent refined to move the source's anchors as the driver's moved
            relative = True
        # The source's own pose: no change (relative) or its absolute one.
        zero = ModelMotion()
        own = {name: getattr(zero, name) for name in POSE_FIELDS} if relative else src.pose_values()
        if self.transfer == "expression":  # keep the source's own pose
            pose = own
        elif not self.follow_position:  # keep the source's own placement
            pose.update({name: own[name] for name in PLACEMENT_FIELDS})
        return ModelMotion.clamped(expression=None if self.transfer == "pose" else z, relative=relative, **pose)

    def keypoint_shift_for(self, reading: _Reading) -> np.ndarray | None:
        """The source keypoints' K×2 shift for the driving face's non-rigid movement since the reference
        (before smoothing); None unless relative mode transfers the expression from the tracker."""
        ref = self._reference
        if (self.mode != "relative" or self.transfer == "pose" or self.expression_from != "tracker"
                or ref is None):
            return None
        expression = self.landmark_expression
        return None if expression is None else expression.keypoint_shift(ref.face, reading.face)

    def eye_openings_for(self, reading: _Reading) -> np.ndarray | None:
        """The source's eye openings (left, right) for the driving face's change since the reference (before
        smoothing; :meth:`~.expression.ExpressionSpace.following_eyes`); None unless relative mode transfers the
        expression from the tracker to a source with anchors."""
        ref = self._reference
        if (self.mode != "relative" or self.transfer == "pose" or self.expression_from != "tracker"
                or ref is None):
            return None
        return self.engine.expressions.following_eyes(self.source.anchors, ref.face, reading.face)

    @functools.cached_property
    def landmark_expression(self) -> LandmarkExpression | None:
        """The source's :class:`LandmarkExpression` (None without a tracked source face), built on first use."""
        return LandmarkExpression.for_source(self.engine, self.source)

    def _smooth(self, motion: ModelMotion, shift: np.ndarray | None, eyes: np.ndarray | None,
                t: float) -> tuple[ModelMotion, np.ndarray | None, np.ndarray | None]:
        if not self._smoothers:
            return motion, shift, eyes
        smoothers = self._smoothers
        if shift is not None:
            shift = smoothers["keypoint_shift"](shift, t)
        if eyes is not None:
            eyes = smoothers["eyes"](eyes, t)
        angles = smoothers["turns"](np.array(motion.turn), t)
        # Scale is smoothed in log space so that shrinking and growing behave alike.
        place = smoothers["placement"](np.array([np.log(motion.scale), *motion.shift]), t)
        expression = motion.expression
        if expression is not None:
            expression = tuple(float(v) for v in smoothers["expression"](np.asarray(expression), t))
        return replace(motion, **dict(zip(TURN_FIELDS, map(float, angles))), scale=float(np.exp(place[0])),
                       **dict(zip(SHIFT_FIELDS, map(float, place[1:]))), expression=expression), shift, eyes


__all__ = ["LandmarkExpression", "Reenactor", "ReenactResult", "ReenactSettings", "MODES", "POSE_SOURCES",
           "EXPRESSION_SOURCES", "TRANSFERS", "tracked_change"]
