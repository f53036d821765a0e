"""``mmfa-studio evaluate``: the field's metrics for a checkpoint over a folder of raw talking-face videos.

Per clip, one fixed crop (the tracker's framing on the first frame with a face) is applied to every frame, as in
VoxCeleb's pre-cropped evaluation:

* same-identity reconstruction — source = the first frame, driving = the clip's other frames; the model renders
  the source with each driving frame's motion, read as reenactment reads it (``motion="tracker"``, the
  default: the head's turns, shift and zoom since the source and the landmarks' non-rigid movement from the
  face tracker, the expression latent from the motion encoder; see ``engine/reenact.py``) or as in the paper
  (``motion="model"``: the motion encoder's absolute pose, translation, scale and expression): L1, PSNR, SSIM,
  LPIPS (shift-tolerant VGG16), AKD (mean landmark distance in crop pixels), AED (dlib embedding L2), and L1
  inside the driving frame's mouth and eyes (``mouth_l1``, ``eyes_l1``: the tracked mesh's regions,
  ``face/regions.py``), where a whole-crop figure barely sees an expression;
* pose control — the source rendered at commanded yaw ±10/±20/±30, pitch ±10/±20, roll ±15 (relative to its
  own pose, through the checkpoint's pose calibration as every edit is); the tracker measures the output: median
  |measured change − commanded change| on that axis;
* disentanglement — pose change measured when only the expression moves (pose_leak_deg), and change of the
  eye/mouth-open measures when only the pose moves (expression_leak);
* identity — dlib embedding cosine between the source crop and every edited output;
* expression following — per driving frame of the reconstruction, the output's mouth- and eye-opening change
  since the source against the driver's: Pearson r and gain (regression slope), pooled over the clips (copying
  the source has gain 0);
* expression from a photo — the clip's frame whose mouth opening differs most from the source's is the photo; the
  source rendered with that photo's expression latent (its pose kept) against the photo's mouth and eye opening:
  median relative error over the clips, beside the source's own (copying);
* named controls (a model with them) — on each clip's source, each control at the ends of its range (1, and −1
  for ``brows``), fitted to that face as the app applies it: the change of the controls' measures against the
  zero edit (``face/measures.py``'s :class:`ControlMeasures`; the mouth's width relative), the head's turn it
  causes (the largest |Δ| of yaw, pitch and roll) and the identity cosine to the source;
* large turns — the one pose figure with ground truth: among 48 frames spread over the clip, source = the most
  frontal, driving = those turned ≥ 12° of yaw or pitch from it, each rendered with its tracked motion and
  compared with the real frame (the reconstruction metrics, beside copying the frontal frame).

The copy-the-source baseline (output = source crop) gets the same reconstruction metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..engine import EXPRESSION_LIMIT, Engine, EngineError, ModelMotion, Motion, VideoError, VideoFileSource
from ..engine.reenact import LandmarkExpression, tracked_change
from ..face import Face
from ..face.anchors import MESH_POINTS
from ..face.crop import crop_at
from ..face.measures import ControlMeasures, ExpressionMeasures, control_measures, expression_measures
from .metrics import (
    Unavailable,
    cosine,
    l1,
    load_identity_embedder,
    load_lpips_metric,
    psnr,
    region_l1,
    ssim,
    ssim_backend,
)

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
POSE_EDITS: tuple[tuple[str, float], ...] = (
    ("yaw", -30), ("yaw", -20), ("yaw", -10), ("yaw", 10), ("yaw", 20), ("yaw", 30),
    ("pitch", -20), ("pitch", -10), ("pitch", 10), ("pitch", 20), ("roll", -15), ("roll", 15),
)
RECON_KEYS = ("l1", "psnr", "ssim", "lpips", "akd", "aed", "mouth_l1", "eyes_l1")
KEYS = RECON_KEYS + ("pose_error_deg", "pose_leak_deg", "expression_leak", "identity_cosine")
MOTION_READERS = ("tracker", "model")
LARGE_TURN_DEG = 12.0


@dataclass
class EvalSettings:
    frames_per_clip: int = 24  # driving frames, evenly spread over the clip
    expression_samples: int = 4  # prior samples for the pose-leak test
    seed: int = 0
    edits: Sequence[tuple[str, float]] = POSE_EDITS
    controls: bool = True  # False: reconstruction metrics only (no pose/expression edits)
    motion: str = "tracker"  # how a driving frame's motion is read: "tracker" (as reenactment) or "model"
    large_turn_deg: float = LARGE_TURN_DEG  # large-turn frames: turned this far (yaw or pitch) from the frontal one
    # Frames searched for the most frontal and the large-turn ones, evenly spread (more than the reconstruction's:
    # large turns are a few moments of a clip); 0 = the reconstruction's frames.
    large_turn_frames: int = 48

    def __post_init__(self) -> None:
        if self.motion not in MOTION_READERS:
            raise ValueError(f"motion must be 'tracker' or 'model', not {self.motion!r}")


@dataclass
class Following:
    """Per driving frame, the driver's and the output's change since the source of one expression measure."""

    driver: list[float] = field(default_factory=list)
    output: list[float] = field(default_factory=list)

    def add(self, driver: float, output: float) -> None:
        self.driver.append(driver)
        self.output.append(output)

    def figures(self) -> dict[str, float | int | None]:
        """Pearson r and gain (the slope of output on driver) over the frames; None where the driver never moves."""
        d, o = np.asarray(self.driver, dtype=np.float64), np.asarray(self.output, dtype=np.float64)
        if len(d) < 3 or d.std() < 1e-6:
            return {"r": None, "gain": None, "frames": len(d)}
        r = float(np.corrcoef(o, d)[0, 1]) if o.std() > 1e-9 else 0.0
        return {"r": r, "gain": float(np.cov(o, d)[0, 1] / d.var(ddof=1)), "frames": len(d)}

    @staticmethod
    def pooled(parts: Iterable[Following]) -> Following:
        pooled = Following()
        for part in parts:
            pooled.driver += part.driver
            pooled.output += part.output
        return pooled


@dataclass
class LargeTurns:
    """Large-turn reconstruction of one clip: ``frames`` driving frames, the model's and the copy's metrics."""

    frames: int = 0
    model: dict[str, float | None] = field(default_factory=dict)
    baseline: dict[str, float | None] = field(default_factory=dict)


@dataclass
class FromPhoto:
    """Expression from a photo on one clip: mouth- and eye-opening of the photo, the output and the source."""

    photo: ExpressionMeasures
    output: ExpressionMeasures
    source: ExpressionMeasures

    def errors(self, of: str) -> dict[str, float]:
        """Relative error of the output's and the source's ``of`` ("mouth_open" or "eye_open") against the photo's."""
        want = max(getattr(self.photo, of), 1e-3)
        return {"output": abs(getattr(self.output, of) - want) / want,
                "copy": abs(getattr(self.source, of) - want) / want}


@dataclass
class ControlReach:
    """One named control set to one value on one clip's source: the control measures of the zero edit and of the
    control's render, the head's turn between them (degrees) and the render's identity cosine to the source."""

    zero: ControlMeasures
    edited: ControlMeasures
    turn_deg: float
    identity: float | None

    def change(self) -> dict[str, float]:
        """Each measure's change; the mouth's width as a fraction of the zero edit's (a smile's +10 %)."""
        zero, edited = self.zero.as_dict(), self.edited.as_dict()
        change = {k: edited[k] - zero[k] for k in zero}
        change["mouth_width"] = edited["mouth_width"] / max(zero["mouth_width"], 1e-6) - 1.0
        return change


def control_settings(controls) -> list[tuple[str, float]]:
    """(name, value) of each named control at the ends of its range that are not 0 (1; −1 too for ``brows``)."""
    return [(name, value) for name in controls.directions for value in reversed(controls.range(name)) if value != 0]


@dataclass
class ClipResult:
    clip: str
    frames: int
    model: dict[str, float | None]
    baseline: dict[str, float | None]
    notes: list[str] = field(default_factory=list)
    mouth: Following = field(default_factory=Following)
    eyes: Following = field(default_factory=Following)
    large_turns: LargeTurns = field(default_factory=LargeTurns)
    from_photo: FromPhoto | None = None
    named_controls: dict[str, ControlReach] = field(default_factory=dict)  # "blink=1" → its reach


def list_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FileNotFoundError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in {folder}")
    return videos


def read_spread_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` + 1 frames evenly spread over the video (RGB uint8), decoding it once.

    Only the chosen frames are kept (a raw video of minutes would not fit in memory), picked by the container's
    frame count; a container that overstates it by a frame or two gets its last frame as the last pick.
    """
    with VideoFileSource(path) as source:
        total = source.frame_count
        if not total or total <= count + 1:  # unknown length or a short clip: every frame, then pick
            frames = list(source)
            if len(frames) <= count + 1:
                return frames
            idx = np.linspace(0, len(frames) - 1, count + 1).round().astype(int)
            return [frames[i] for i in idx]
        wanted = np.linspace(0, total - 1, count + 1).round().astype(int)
        picks = set(wanted.tolist())
        kept: list[np.ndarray] = []
        last_index, last = -1, None
        for i, frame in enumerate(source):
            if i in picks:
                kept.append(frame)
            last_index, last = i, frame
        if len(kept) < len(wanted) and last is not None and last_index not in picks:
            kept.append(last)
        return kept


@dataclass
class ClipCrops:
    """A clip's frames cropped as the evaluation sees them: the first frame with a face is the source, and every
    later frame is cropped at the source's box (so the head's motion inside the crop is the clip's own)."""

    source: np.ndarray  # S×S×3 uint8
    driving: list[np.ndarray]  # S×S×3 uint8 each
    box: np.ndarray  # (centre x, y, side) of the crop in the frames' pixels


def crop_clip(engine: Engine, frames: Sequence[np.ndarray]) -> ClipCrops | None:
    """:class:`ClipCrops` of ``frames`` at the engine's image size; None when no frame shows a face."""
    first = next(((i, f) for i, f in enumerate(frames) for f in [engine.detect_faces(f)] if f), None)
    if first is None:
        return None
    start, faces = first
    source, transform = engine.crop(frames[start], faces[0])
    driving = [crop_at(f, transform.box, engine.image_size)[0] for f in frames[start + 1:]]
    return ClipCrops(source, driving, np.asarray(transform.box))


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(values)) if values else None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


class Evaluator:
    def __init__(self, engine: Engine, settings: EvalSettings | None = None):
        self.engine = engine
        self.settings = settings or EvalSettings()
        self.lpips = load_lpips_metric()
        self.identity = load_identity_embedder()
        self.ssim_fn = ssim_backend()
        self.unavailable: dict[str, str] = {}
        for key, backend in (("lpips", self.lpips), ("ssim", self.ssim_fn)):
            if isinstance(backend, Unavailable):
                self.unavailable[key] = backend.reason
        if isinstance(self.identity, Unavailable):
            for key in ("aed", "identity_cosine"):
                self.unavailable[key] = self.identity.reason

    # -- measurements ---------------------------------------------------------------------------------
    def _face(self, crop: np.ndarray) -> Face | None:
        faces = self.engine.tracker.detect(crop)
        return faces[0] if faces else None

    def _descriptor(self, crop: np.ndarray) -> np.ndarray | None:
        return None if isinstance(self.identity, Unavailable) else self.identity.descriptor(crop)

    def _recon_metrics(self, output: np.ndarray, target: np.ndarray, target_face: Face | None,
                       target_embedding: np.ndarray | None,
                       output_measured: tuple[Face | None, np.ndarray | None] | None = None) -> dict[str, float | None]:
        """``output_measured``: the output's face and identity descriptor when already known (the copied source)."""
        row: dict[str, float | None] = {"l1": l1(output, target), "psnr": psnr(output, target)}
        row["ssim"] = None if isinstance(self.ssim_fn, Unavailable) else ssim(output, target, self.ssim_fn)
        row["lpips"] = None if isinstance(self.lpips, Unavailable) else self.lpips(output, target)
        if output_measured is not None:
            out_face, out_emb = output_measured
        else:
            out_face = self._face(output) if target_face is not None else None
            out_emb = self._descriptor(output) if target_embedding is not None else None
        if target_face is not None and out_face is not None and len(out_face.landmarks) == len(target_face.landmarks):
            row["akd"] = float(np.linalg.norm(out_face.landmarks - target_face.landmarks, axis=1).mean())
        else:
            row["akd"] = None
        ok = out_emb is not None and target_embedding is not None
        row["aed"] = float(np.linalg.norm(out_emb - target_embedding)) if ok else None
        # The mouth and eyes of the target frame: a few percent of the crop, where expressions show.
        mesh = target_face is not None and len(target_face.landmarks) >= MESH_POINTS
        row.update(region_l1(output, target, target_face.landmarks) if mesh
                   else {"mouth_l1": None, "eyes_l1": None})
        return row

    # -- one clip -------------------------------------------------------------------------------------
    def evaluate_clip(self, path: Path) -> ClipResult:
        s = self.settings
        try:
            frames = read_spread_frames(path, s.frames_per_clip)
        except VideoError as exc:  # one corrupt file is reported, not the end of a folder's evaluation
            return ClipResult(path.name, 0, {k: None for k in KEYS}, {k: None for k in RECON_KEYS},
                              [f"unreadable: {exc}"])
        notes: list[str] = []
        crops = crop_clip(self.engine, frames)
        if crops is None:
            return ClipResult(path.name, 0, {k: None for k in KEYS}, {k: None for k in RECON_KEYS}, ["no face found"])
        source_crop, driving = crops.source, crops.driving
        source = self.engine.prepare_crop(source_crop, name=path.name)

        # Same-identity reconstruction with each driving frame's motion.
        source_measured = (self._face(source_crop), self._descriptor(source_crop))  # the baseline's output, once
        targets = [(self._face(target), self._descriptor(target)) for target in driving]
        outputs = self._reenact(source, source_measured[0], driving, [face for face, _ in targets], notes)
        out_measured = [(self._face(out), self._descriptor(out)) for out in outputs]
        model_rows = [self._recon_metrics(out, target, *measured, output)
                      for out, target, measured, output in zip(outputs, driving, targets, out_measured)]
        base_rows = [self._recon_metrics(source_crop, target, *measured, source_measured)
                     for target, measured in zip(driving, targets)]
        model = {k: _mean([r[k] for r in model_rows]) for k in RECON_KEYS}
        baseline = {k: _mean([r[k] for r in base_rows]) for k in RECON_KEYS}
        result = ClipResult(path.name, len(driving), model, baseline, notes)
        self._follow(result, source_measured[0], [face for face, _ in targets], [face for face, _ in out_measured])
        result.from_photo = self._from_photo(source, source_measured[0], driving, [face for face, _ in targets])
        if s.controls:
            model.update(self._controls(source, source_crop, notes))
            result.named_controls = self.named_controls(source, source_crop)
        else:
            model.update({k: None for k in KEYS if k not in RECON_KEYS})
        if s.large_turn_frames > 0:
            try:
                wide = [crop_at(f, crops.box, self.engine.image_size)[0]
                        for f in read_spread_frames(path, s.large_turn_frames)]
            except VideoError as exc:
                notes.append(f"large turns skipped: {exc}")
                wide = []
            measured = [(self._face(c), self._descriptor(c)) for c in wide]
            result.large_turns = self._large_turns(wide, measured, path.name)
        else:
            result.large_turns = self._large_turns([source_crop, *driving], [source_measured, *targets], path.name)
        return result

    def _reenact(self, source, source_face: Face | None, crops: Sequence[np.ndarray], faces: Sequence[Face | None],
                 notes: list[str]) -> list[np.ndarray]:
        """The prepared ``source`` driven by each of ``crops`` (tracked as ``faces``), as reenactment drives it."""
        if not crops:
            return []
        motions = [self._driving_motion(crop, source, source_face, face) for crop, face in zip(crops, faces)]
        shifts = eyes = None
        if self.settings.motion == "tracker":
            if untracked := sum(m.relative is False for m in motions):
                notes.append(f"{untracked} of {len(motions)} driving frames read by the model alone (no tracked face)")
            expression = LandmarkExpression.for_source(self.engine, source, face=source_face) if source_face else None
            if expression is not None:
                shifts = [expression.keypoint_shift(source_face, face) if face is not None else None for face in faces]
            if source_face is not None:
                eyes = [None if face is None else self.engine.expressions.following_eyes(source.anchors, source_face,
                                                                                       face) for face in faces]
        return [r.crop for r in self.engine.render_batch(source, motions, keypoint_shifts=shifts, eye_openings=eyes)]

    @staticmethod
    def _follow(result: ClipResult, source_face: Face | None, drivers: Sequence[Face | None],
                outputs: Sequence[Face | None]) -> None:
        """Each frame's mouth- and eye-opening change since the source: the driver's and the output's."""
        if source_face is None:
            return
        start = expression_measures(source_face)
        for driver, output in zip(drivers, outputs):
            if driver is None or output is None:
                continue
            d, o = expression_measures(driver), expression_measures(output)
            result.mouth.add(d.mouth_open - start.mouth_open, o.mouth_open - start.mouth_open)
            result.eyes.add(d.eye_open - start.eye_open, o.eye_open - start.eye_open)

    def _from_photo(self, source, source_face: Face | None, crops: Sequence[np.ndarray],
                    faces: Sequence[Face | None]) -> FromPhoto | None:
        """The source with the expression of the clip's frame whose mouth differs most from the source's."""
        if source_face is None:
            return None
        start = expression_measures(source_face)
        tracked = [(abs(expression_measures(f).mouth_open - start.mouth_open), i) for i, f in enumerate(faces) if f]
        if not tracked:
            return None
        photo = max(tracked)[1]
        try:
            z = self.engine.expressions.encode(crops[photo], source=source)
        except EngineError:
            return None
        # (a photo's code may lie past the latent's editing limit: clamp it, as the app's sliders would)
        z = np.clip(np.asarray(z, dtype=np.float64), -EXPRESSION_LIMIT, EXPRESSION_LIMIT)
        face = self._face(self.engine.render(source, Motion(expression=tuple(float(v) for v in z))).crop)
        if face is None:
            return None
        return FromPhoto(expression_measures(faces[photo]), expression_measures(face), start)

    def _large_turns(self, crops: Sequence[np.ndarray], measured: Sequence[tuple[Face | None, np.ndarray | None]],
                     name: str) -> LargeTurns:
        """The clip's most frontal frame driven by its frames turned ≥ ``large_turn_deg`` from it, against the
        real frames (all cropped at one box, so the turns are the clip's own)."""
        posed = [i for i, (face, _) in enumerate(measured) if face is not None and face.pose is not None]
        if not posed:
            return LargeTurns()
        frontal = min(posed, key=lambda i: abs(measured[i][0].pose.yaw) + abs(measured[i][0].pose.pitch))
        front = measured[frontal][0].pose
        turned = [i for i in posed if max(abs(measured[i][0].pose.yaw - front.yaw),
                                          abs(measured[i][0].pose.pitch - front.pitch)) >= self.settings.large_turn_deg]
        if not turned:
            return LargeTurns()
        source = self.engine.prepare_crop(crops[frontal], name=f"{name} (frontal)")
        outputs = self._reenact(source, measured[frontal][0], [crops[i] for i in turned],
                                [measured[i][0] for i in turned], [])
        model_rows = [self._recon_metrics(out, crops[i], *measured[i]) for out, i in zip(outputs, turned)]
        base_rows = [self._recon_metrics(crops[frontal], crops[i], *measured[i], measured[frontal]) for i in turned]
        return LargeTurns(len(turned), {k: _mean([r[k] for r in model_rows]) for k in RECON_KEYS},
                          {k: _mean([r[k] for r in base_rows]) for k in RECON_KEYS})

    def _driving_motion(self, crop: np.ndarray, source, source_face: Face | None, face: Face | None
                        ) -> ModelMotion:
        """The motion that renders the prepared ``source`` as ``crop`` (both cropped at the source's box)."""
        read = self.engine.read_crop_motion(crop)
        if self.engine.anchor_expression is not None and face is not None:  # the mesh's code, as reenactment reads it
            code = self.engine.expressions.of_face(face)
            read = replace(read, expression=code if code is not None else read.expression)
        if self.settings.motion == "tracker" and source_face is not None and face is not None:
            change = tracked_change(source_face, face, self.engine.image_size)
            if change is not None:  # the expression relative to the source, as reenactment's
                followed = (self.engine.expressions.relative(source.motion.expression, source_face, face,
                                                             source.anchors)
                            if source.motion.expression is not None else None)
                return replace(change, expression=read.expression if followed is None else followed)
        return ModelMotion.clamped(**read.pose_values(), expression=read.expression, relative=False)

    def _controls(self, source, source_crop: np.ndarray, notes: list[str]) -> dict[str, float | None]:
        """Pose edits, expression-only edits and identity under both, against the zero-edit render."""
        s = self.settings
        reference = self.engine.render(source, Motion()).crop
        ref_face = self._face(reference)
        src_emb = self._descriptor(source_crop)
        pose_errors, expr_leaks, pose_leaks, cosines = [], [], [], []
        edits = [Motion(**{axis: float(deg)}) for axis, deg in s.edits]
        z = [tuple(float(v) for v in self.engine.expressions.sample(s.seed + i)) for i in range(s.expression_samples)]
        expr_edits = [Motion(expression=zi) for zi in z]
        edit_frames = self.engine.render_batch(source, edits + expr_edits)
        if ref_face is None or ref_face.pose is None:
            notes.append("tracker found no face in the zero-edit render: pose metrics skipped")
        for (axis, deg), frame in zip(s.edits, edit_frames[: len(edits)]):
            face = self._face(frame.crop)
            if ref_face is not None and ref_face.pose is not None and face is not None and face.pose is not None:
                measured = getattr(face.pose, axis) - getattr(ref_face.pose, axis)
                pose_errors.append(abs(measured - deg))
                m0, m1 = expression_measures(ref_face), expression_measures(face)
                expr_leaks.append((abs(m1.eye_open - m0.eye_open) + abs(m1.mouth_open - m0.mouth_open)) / 2)
            elif ref_face is not None:
                pose_errors.append(float(abs(deg)))  # the edit lost the face: count it as a full miss
        for frame in edit_frames[len(edits):]:
            face = self._face(frame.crop)
            if ref_face is not None and ref_face.pose is not None and face is not None and face.pose is not None:
                pose_leaks.append(float(np.abs(face.pose.as_array() - ref_face.pose.as_array()).max()))
        if src_emb is not None:
            for frame in edit_frames:
                emb = self._descriptor(frame.crop)
                if emb is not None:
                    cosines.append(cosine(src_emb, emb))
                else:
                    cosines.append(0.0)  # no face recognisable after the edit: identity lost
        return dict(pose_error_deg=_median(pose_errors), pose_leak_deg=_median(pose_leaks),
                    expression_leak=_median(expr_leaks), identity_cosine=_mean(cosines))


    def named_controls(self, source, source_crop: np.ndarray) -> dict[str, ControlReach]:
        """Each named control (:func:`control_settings`) on ``source``, fitted to it as the app applies it, against
        the zero edit; {} for a model without named controls or when the tracker loses a render's face."""
        controls = self.engine.expressions.controls
        if controls is None or source.expression is None:
            return {}
        settings = control_settings(controls)
        latents = [self.engine.expressions.with_controls(source.expression, {name: value}, source)
                   for name, value in settings]
        frames = self.engine.render_batch(source, [Motion()] + [Motion(expression=tuple(map(float, z)))
                                                                for z in latents])
        zero = self._face(frames[0].crop)
        if zero is None or zero.pose is None or len(zero.landmarks) < MESH_POINTS:
            return {}
        src_emb = self._descriptor(source_crop)
        reach = {}
        for (name, value), frame in zip(settings, frames[1:]):
            face = self._face(frame.crop)
            if face is None or face.pose is None or len(face.landmarks) < MESH_POINTS:
                continue
            emb = self._descriptor(frame.crop) if src_emb is not None else None
            reach[f"{name}={value:g}"] = ControlReach(
                control_measures(zero), control_measures(face),
                float(np.abs(face.pose.as_array() - zero.pose.as_array()).max()),
                None if emb is None else cosine(src_emb, emb))
        return reach


def controls_summary(clips: Sequence[dict[str, ControlReach]]) -> dict:
    """Per control setting over the clips: the median measures at zero and edited, the median change, the median
    head turn and the mean identity."""
    summary = {}
    names = [f.name for f in fields(ControlMeasures)]
    for key in dict.fromkeys(k for clip in clips for k in clip):
        rows = [clip[key] for clip in clips if key in clip]
        median = lambda values: float(np.median(values))
        summary[key] = {
            "clips": len(rows),
            "zero": {m: median([getattr(r.zero, m) for r in rows]) for m in names},
            "edited": {m: median([getattr(r.edited, m) for r in rows]) for m in names},
            "change": {m: median([r.change()[m] for r in rows]) for m in names},
            "turn_deg": median([r.turn_deg for r in rows]),
            "identity_cosine": _mean([r.identity for r in rows]),
        }
    return summary


def _over_clips(rows: Sequence[tuple[dict[str, float | None], int]], key: str, median: bool = False) -> float | None:
    """The frame-weighted mean (or the median) of ``key`` over (metrics, frames) rows that have it."""
    vals = [(row[key], n) for row, n in rows if row.get(key) is not None]
    if not vals:
        return None
    if median:
        return float(np.median([v for v, _ in vals]))
    return float(sum(v * n for v, n in vals) / sum(n for _, n in vals))


def summarise(results: list[ClipResult], unavailable: dict[str, str]) -> dict:
    """Frame-weighted means over clips (medians for the pose metrics), with the per-clip list."""
    used = [r for r in results if r.frames > 0]

    def overall(key: str, which: str) -> float | None:
        rows = [(getattr(r, which), r.frames) for r in used]
        return _over_clips(rows, key, median=key in ("pose_error_deg", "pose_leak_deg", "expression_leak"))

    report = {k: overall(k, "model") for k in KEYS}
    report["frames"] = int(sum(r.frames for r in used))
    report["clips"] = len(used)
    report["baseline_copy_source"] = {k: overall(k, "baseline") for k in RECON_KEYS}
    report["unavailable"] = dict(unavailable)
    report["expression_following"] = {"mouth": Following.pooled(r.mouth for r in used).figures(),
                                      "eyes": Following.pooled(r.eyes for r in used).figures()}
    report["large_turn"] = _large_turn_summary([r.large_turns for r in used])
    photos = [r.from_photo for r in used if r.from_photo is not None]
    errors = lambda which: {f"{of}_relative_error": _median([p.errors(of)[which] for p in photos])
                            for of in ("mouth_open", "eye_open")}
    report["expression_from_photo"] = {"clips": len(photos), **errors("output"), "baseline_copy_source": errors("copy")}
    report["named_controls"] = controls_summary([r.named_controls for r in used])
    report["per_clip"] = [
        {"clip": r.clip, "frames": r.frames, **r.model, "baseline": r.baseline, "notes": r.notes,
         "expression_following": {"mouth": r.mouth.figures(), "eyes": r.eyes.figures()},
         "large_turn": {"frames": r.large_turns.frames, **r.large_turns.model, "baseline": r.large_turns.baseline},
         "expression_from_photo": None if r.from_photo is None else {
             part: getattr(r.from_photo, part).as_dict() for part in ("photo", "output", "source")},
         "named_controls": {key: {"change": reach.change(), "turn_deg": reach.turn_deg,
                                  "identity_cosine": reach.identity} for key, reach in r.named_controls.items()}}
        for r in results
    ]
    return report


def _large_turn_summary(clips: Sequence[LargeTurns]) -> dict:
    """Frame-weighted means over the clips that have large-turn frames, and the LPIPS gain over copying."""
    used = [c for c in clips if c.frames > 0]
    mean = lambda key, which: _over_clips([(getattr(c, which), c.frames) for c in used], key)
    summary: dict = {"frames": int(sum(c.frames for c in used)), "clips": len(used)}
    summary.update({k: mean(k, "model") for k in RECON_KEYS})
    summary["baseline_copy_source"] = {k: mean(k, "baseline") for k in RECON_KEYS}
    base = summary["baseline_copy_source"]["lpips"]
    summary["lpips_gain_over_copy"] = (1.0 - summary["lpips"] / base) if summary["lpips"] is not None and base else None
    return summary


def evaluate_videos(engine: Engine, videos: Iterable[Path], settings: EvalSettings | None = None) -> dict:
    """The report (see :func:`summarise`, plus how motion was read) over ``videos``; wrap them in a progress bar
    to show progress."""
    evaluator = Evaluator(engine, settings)
    results = [evaluator.evaluate_clip(path) for path in videos]
    return {"motion": evaluator.settings.motion, **summarise(results, evaluator.unavailable)}
