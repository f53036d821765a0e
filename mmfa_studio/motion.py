"""What a frame is rendered with: the user-facing :class:`Motion` and keyframe animation.

A :class:`Motion` is plain numbers (degrees, factors, normalised units, an expression latent) so it can be
stored in JSON (keyframes, projects), shown on sliders and validated with a one-line message per field.

Semantics (applied by :meth:`mmfa_studio.engine.Engine.render`):

* ``relative=True`` (the default): yaw/pitch/roll and tx/ty/tz **add** to the source's own pose,
  ``scale`` **multiplies** the source's scale. ``Motion()`` is the zero edit: the source as it is.
  A :class:`Motion`'s turns are the user's degrees (how far the face should turn; the engine maps them through
  the checkpoint's pose calibration); a :class:`ModelMotion`'s are model angles (taken as they are).
* ``relative=False``: the numbers are the absolute pose (model conventions, see ``model/keypoints.py``:
  +yaw turns the face to the image right, +pitch tilts it up, +roll turns it clockwise on screen).
* ``expression``: a latent z (length = the model's ``latent_dim``), or ``None`` for the source's own.
  The rendered deformation is δ = decode(z_src + strength · (z − z_src)): strength 0 keeps the source's
  expression, 1 uses z, values between blend in latent space, values above 1 exaggerate the change.
  With ``expression=None`` the source's own δ is used unchanged (so the zero edit is exact).

Floor 1 and torch-free, so the app's timeline and projects use it before the engine (and torch) has loaded;
``mmfa_studio.engine`` re-exports everything here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

# A latent component beyond this many prior standard deviations is a typo, not an expression.
EXPRESSION_LIMIT = 10.0
INTERPOLATION_MODES = ("linear", "slerp")
# The longest animation, in seconds, whether its length is given or taken from the last keyframe: an hour at 240
# fps is 864 000 frames; a keyframe at 1e12 s would be a list of motions that never ends.
MAX_DURATION = 3600.0
# The largest JSON file (keyframes, projects) read: far above any real one, and a bound on its parse's memory.
MAX_JSON_BYTES = 16 * 2**20


# Each number field's role and allowed range, (low, high) inclusive, is kept on the field itself (metadata), so
# the field list is written once: MOTION_RANGES and the groups below are read off it. Angles beyond these are
# outside what the motion encoder's ±99° bins and the keypoint composition (unique for |yaw| < 90°) handle.
_TURN, _SCALE, _SHIFT = "turn", "scale", "shift"


def _number(default: float, low: float, high: float, role: str | None = None) -> Any:
    return field(default=default, metadata={"range": (low, high), "role": role})


@dataclass(frozen=True)
class Motion:
    """A head pose and expression to render the source with (see the module docstring for semantics).

    A relative motion's turns are the user's degrees: the engine maps them through the checkpoint's pose
    calibration. A :class:`ModelMotion` is the same numbers already in model angles (no calibration).
    """

    yaw: float = _number(0.0, -90.0, 90.0, _TURN)
    pitch: float = _number(0.0, -90.0, 90.0, _TURN)
    roll: float = _number(0.0, -180.0, 180.0, _TURN)
    scale: float = _number(1.0, 0.25, 4.0, _SCALE)
    tx: float = _number(0.0, -2.0, 2.0, _SHIFT)
    ty: float = _number(0.0, -2.0, 2.0, _SHIFT)
    tz: float = _number(0.0, -2.0, 2.0, _SHIFT)
    expression: tuple[float, ...] | None = None
    expression_strength: float = _number(1.0, -2.0, 3.0)
    relative: bool = True

    def __post_init__(self) -> None:
        # Normalise numpy arrays / lists to a tuple of floats so the dataclass stays hashable and comparable.
        if self.expression is not None and not isinstance(self.expression, tuple):
            object.__setattr__(self, "expression", tuple(float(v) for v in np.asarray(self.expression).ravel()))

    @classmethod
    def clamped(cls, expression=None, relative: bool = True, **pose: float) -> Motion:
        """A motion read from a face: each pose value clipped to ``MOTION_RANGES`` and the expression to
        ±``EXPRESSION_LIMIT`` (a tracker reading may stray past the ranges a user may type)."""
        pose = {k: float(np.clip(v, *MOTION_RANGES[k])) for k, v in pose.items()}
        if expression is not None:
            expression = tuple(float(v) for v in np.clip(np.asarray(expression, dtype=float), -EXPRESSION_LIMIT,
                                                         EXPRESSION_LIMIT))
        return cls(expression=expression, relative=relative, **pose)

    def validate(self, latent_dim: int | None = None) -> Motion:
        """Raise ``ValueError`` naming the first bad field and its allowed range; returns ``self``."""
        for name, (low, high) in MOTION_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or not low <= value <= high:
                raise ValueError(f"{name} = {value:g} is out of range [{low:g}, {high:g}]")
        if self.expression is not None:
            if len(self.expression) == 0:
                raise ValueError("expression is empty (give the latent's values, or none for the source's own)")
            if latent_dim is not None and len(self.expression) != latent_dim:
                raise ValueError(f"expression has {len(self.expression)} values; this model's latent has {latent_dim}")
            for i, v in enumerate(self.expression):
                if not math.isfinite(v) or abs(v) > EXPRESSION_LIMIT:
                    raise ValueError(f"expression[{i}] = {v:g} is out of range "
                                     f"[{-EXPRESSION_LIMIT:g}, {EXPRESSION_LIMIT:g}]")
        return self

    def is_identity(self) -> bool:
        """True for the zero edit (relative, no change): renders the source as it is."""
        return self == type(self)()

    @property
    def turn(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll), degrees."""
        return tuple(getattr(self, name) for name in TURN_FIELDS)  # type: ignore[return-value]

    @property
    def shift(self) -> tuple[float, float, float]:
        """(tx, ty, tz), normalised units."""
        return tuple(getattr(self, name) for name in SHIFT_FIELDS)  # type: ignore[return-value]

    def as_model_angles(self) -> ModelMotion:
        """These numbers taken as model angles as they are (no pose calibration): e.g. a driver's tracked turns."""
        return ModelMotion(**{f.name: getattr(self, f.name) for f in fields(self)})

    @staticmethod
    def lerp(a: Motion, b: Motion, t: float, expression_mode: str = "linear") -> Motion:
        """The motion a fraction ``t`` (0 → a, 1 → b) of the way from ``a`` to ``b``.

        Numbers interpolate linearly; expression latents linearly or spherically (``expression_mode``
        'linear' | 'slerp', as :func:`mmfa_studio.model.interpolate`). When only one side has a latent the
        other keeps the source's own expression, so the expression is faded by its strength instead.
        ``relative`` comes from ``a`` (both should agree).
        """
        if expression_mode not in INTERPOLATION_MODES:
            raise ValueError(f"expression interpolation must be 'linear' or 'slerp', not {expression_mode!r}")
        mix = lambda x, y: x + (y - x) * t
        numbers = {name: mix(getattr(a, name), getattr(b, name)) for name in TURN_FIELDS + SHIFT_FIELDS}
        # Scale multiplies, so it interpolates geometrically (halfway between 0.5 and 2 is 1).
        scale = a.scale * (b.scale / a.scale) ** t
        if a.expression is not None and b.expression is not None:
            expression = interpolate_latents(np.asarray(a.expression), np.asarray(b.expression), t, expression_mode)
            strength = mix(a.expression_strength, b.expression_strength)
        elif a.expression is None and b.expression is None:
            expression, strength = None, mix(a.expression_strength, b.expression_strength)
        else:
            # Source expression ↔ latent: fade the latent in by its strength (strength 0 = source's own).
            expression = a.expression if a.expression is not None else b.expression
            sa = a.expression_strength if a.expression is not None else 0.0
            sb = b.expression_strength if b.expression is not None else 0.0
            strength = mix(sa, sb)
        return type(a)(scale=scale, expression=None if expression is None else tuple(map(float, expression)),
                       expression_strength=strength, relative=a.relative, **numbers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (expression as a list or null)."""
        data = asdict(self)
        data["expression"] = None if self.expression is None else list(self.expression)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Motion:
        """Inverse of :meth:`to_dict`; missing fields take their defaults, unknown ones are refused."""
        if not isinstance(data, dict):
            raise ValueError(f"a motion must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown motion field(s): {_names(unknown)} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "relative":
                if not isinstance(value, bool):
                    raise ValueError(f"relative must be true or false, not {_show(value)}")
                values[name] = value
            elif name == "expression":
                if value is not None:
                    if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
                        raise ValueError("expression must be a list of numbers or null")
                    value = tuple(float(v) for v in value)
                values[name] = value
            else:
                if not _is_number(value):
                    raise ValueError(f"{name} must be a number, not {_show(value)}")
                values[name] = float(value)
        return cls(**values)

    def with_changes(self, **changes: Any) -> Motion:
        return replace(self, **changes)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # JSON integers are unbounded: one with hundreds of digits cannot become a float (OverflowError).
    return not isinstance(value, int) or abs(value) < 2**1023


@dataclass(frozen=True)
class ModelMotion(Motion):
    """A :class:`Motion` whose turns are model angles: the keypoints turn by exactly this much. The renderer takes
    these as they are; a plain :class:`Motion` (the user's degrees) reaches it through the checkpoint's pose
    calibration (``PoseCalibration.to_model_motion``). A driver's tracked turns are model angles already."""


def _fields_with(*roles: str | None) -> tuple[str, ...]:
    return tuple(f.name for f in fields(Motion) if "range" in f.metadata and f.metadata["role"] in roles)


TURN_FIELDS = _fields_with(_TURN)  # ("yaw", "pitch", "roll")
SHIFT_FIELDS = _fields_with(_SHIFT)  # ("tx", "ty", "tz")
PLACEMENT_FIELDS = _fields_with(_SCALE, _SHIFT)  # where the head sits: scale and translation
POSE_FIELDS = _fields_with(_TURN, _SCALE, _SHIFT)  # the rigid head motion: turns, scale, translation
# Allowed ranges, (low, high) inclusive; sliders in the app can use them directly.
MOTION_RANGES: dict[str, tuple[float, float]] = {f.name: f.metadata["range"] for f in fields(Motion)
                                                 if "range" in f.metadata}


def interpolate_latents(z0: np.ndarray, z1: np.ndarray, t: float | np.ndarray, mode: str = "linear") -> np.ndarray:
    """Latents between z0 (t = 0) and z1 (t = 1), each Z or N×Z (t scalar or N), 'linear' or 'slerp'.

    Numpy, so the GUI thread's timeline scrub never needs torch; the engine's ``expressions.interpolate``
    uses it too. Spherical interpolation keeps the norm typical of Gaussian samples, so midpoints between two
    prior samples stay in the region the decoder was trained on. Both modes are exact at both ends.
    """
    z0, z1 = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if mode == "linear":
        # torch.lerp's form (z0 + t·(z1 − z0) below the midpoint, z1 − (1 − t)·(z1 − z0) above): exact at the ends
        return np.where(t < 0.5, z0 + t * (z1 - z0), z1 - (1.0 - t) * (z1 - z0))
    if mode != "slerp":
        raise ValueError(f"interpolation mode must be 'linear' or 'slerp', not {mode!r}")
    n0 = np.linalg.norm(z0, axis=-1, keepdims=True)
    n1 = np.linalg.norm(z1, axis=-1, keepdims=True)
    cos = np.clip((z0 * z1).sum(-1, keepdims=True) / np.maximum(n0 * n1, 1e-8), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    small = np.abs(sin) < 1e-5  # (anti)parallel: fall back to linear
    safe_sin = np.where(small, 1.0, sin)
    w0 = np.where(small, 1 - t, np.sin((1 - t) * omega) / safe_sin)
    w1 = np.where(small, t, np.sin(t * omega) / safe_sin)
    return w0 * z0 + w1 * z1


# -- keyframes -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Keyframe:
    time: float  # seconds from the start
    motion: Motion


@dataclass(frozen=True)
class KeyframeAnimation:
    """Motions at times; :meth:`motion_at` interpolates between them (held before the first / after the last).

    JSON form (a file for ``mmfa-studio animate``)::

        {"fps": 25, "duration": 4.0, "interpolation": "linear",       # all three optional
         "keyframes": [{"time": 0.0, "motion": {}},
                       {"time": 1.5, "motion": {"yaw": 20, "pitch": -5}},
                       {"time": 3.0, "motion": {"yaw": -20, "expression": [0.5, -1.2, ...]}}]}

    or just the list of keyframes. ``motion`` takes the fields of :class:`Motion` (missing = default);
    ``interpolation`` ('linear' | 'slerp') applies to expression latents; ``duration`` defaults to the last
    keyframe's time.
    """

    keyframes: tuple[Keyframe, ...]
    fps: float = 25.0
    duration: float | None = None
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        if not self.keyframes:
            raise ValueError("an animation needs at least one keyframe")
        times = [k.time for k in self.keyframes]
        if any(not math.isfinite(t) or not 0 <= t <= MAX_DURATION for t in times):
            bad = next(t for t in times if not math.isfinite(t) or not 0 <= t <= MAX_DURATION)
            raise ValueError(f"keyframe time {bad:g} s is out of range [0, {MAX_DURATION:g}] seconds")
        for i, (a, b) in enumerate(zip(times, times[1:])):
            if b <= a:
                what = "repeats" if b == a else "comes before"
                raise ValueError(f"keyframe {i + 1} at {b:g} s {what} keyframe {i} at {a:g} s: keyframe times must "
                                 "increase strictly")
        if not (math.isfinite(self.fps) and 1 <= self.fps <= 240):
            raise ValueError(f"fps = {self.fps:g} is out of range [1, 240]")
        if self.duration is not None and not (math.isfinite(self.duration) and 0 <= self.duration <= MAX_DURATION):
            raise ValueError(f"duration = {self.duration:g} s is out of range [0, {MAX_DURATION:g}]")
        if self.interpolation not in INTERPOLATION_MODES:
            raise ValueError(f"interpolation must be 'linear' or 'slerp', not {self.interpolation!r}")

    @property
    def total_duration(self) -> float:
        return self.keyframes[-1].time if self.duration is None else self.duration

    @property
    def frame_count(self) -> int:
        """Frames at ``fps`` covering [0, duration] (both ends included)."""
        return int(math.floor(self.total_duration * self.fps + 1e-9)) + 1

    def motion_at(self, time: float) -> Motion:
        keys = self.keyframes
        if time <= keys[0].time:
            return keys[0].motion
        if time >= keys[-1].time:
            return keys[-1].motion
        i = int(np.searchsorted([k.time for k in keys], time, side="right")) - 1
        a, b = keys[i], keys[i + 1]
        return Motion.lerp(a.motion, b.motion, (time - a.time) / (b.time - a.time), self.interpolation)

    def motions(self) -> list[Motion]:
        """One motion per output frame."""
        return [self.motion_at(i / self.fps) for i in range(self.frame_count)]

    def validate(self, latent_dim: int | None = None) -> KeyframeAnimation:
        for i, key in enumerate(self.keyframes):
            try:
                key.motion.validate(latent_dim)
            except ValueError as exc:
                raise ValueError(f"keyframe {i} (time {key.time:g} s): {exc}") from None
        return self

    @classmethod
    def from_json(cls, data: Any) -> KeyframeAnimation:
        """Parse the JSON form (see the class docstring); ``ValueError`` with a one-line message."""
        options: dict[str, Any] = {}
        if isinstance(data, dict):
            unknown = sorted(set(data) - {"keyframes", "fps", "duration", "interpolation"})
            if unknown:
                raise ValueError(f"unknown key(s) in the keyframe file: {_names(unknown)}")
            for key in ("fps", "duration"):
                if key in data:
                    if not _is_number(data[key]):
                        raise ValueError(f"{key} must be a number")
                    options[key] = float(data[key])
            if "interpolation" in data:
                if not isinstance(data["interpolation"], str):
                    raise ValueError("interpolation must be 'linear' or 'slerp'")
                options["interpolation"] = data["interpolation"]
            data = data.get("keyframes")
        if not isinstance(data, list):
            raise ValueError("keyframes must be a list of {\"time\": seconds, \"motion\": {...}}")
        keyframes = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "time" not in item:
                raise ValueError(f"keyframe {i} must be an object with a 'time' (and a 'motion')")
            extra = sorted(set(item) - {"time", "motion"})
            if extra:
                raise ValueError(f"keyframe {i}: unknown key(s) {_names(extra)}")
            if not _is_number(item["time"]):
                raise ValueError(f"keyframe {i}: time must be a number of seconds")
            try:
                motion = Motion.from_dict(item.get("motion", {}))
            except ValueError as exc:
                raise ValueError(f"keyframe {i}: {exc}") from None
            keyframes.append(Keyframe(float(item["time"]), motion))
        return cls(tuple(keyframes), **options)

    @classmethod
    def load(cls, path: str | Path) -> KeyframeAnimation:
        path = Path(path)
        data = read_json_file(path, "keyframe file")
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"fps": self.fps, "duration": self.duration, "interpolation": self.interpolation,
                "keyframes": [{"time": k.time, "motion": k.motion.to_dict()} for k in self.keyframes]}


# -- the JSON schema shared by keyframe files and projects (app/project.py) --------------------------------

def read_json_file(path: str | Path, what: str) -> Any:
    """The JSON in ``path``, or ``ValueError`` with one line: missing, a folder, over :data:`MAX_JSON_BYTES`,
    not UTF-8, not JSON, NaN/Infinity (not JSON, though Python writes them), or nested too deeply."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a folder, not a file")
        if not path.is_file():
            raise ValueError(f"{what} {path} does not exist")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{what} {path} is over {MAX_JSON_BYTES // 2**20} MB: not a {what}")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return parse_json(text, f"{what} {path}")


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` with one-line ``ValueError``s (see :func:`read_json_file`)."""
    def constant(name: str) -> Any:
        raise ValueError(f"{where}: {name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be a {where.split()[0]} file") from None


def json_number(value: Any, where: str, low: float, high: float) -> float:
    """A JSON number within [low, high] (not a bool, not an integer too large for a float)."""
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number, not {_show(value)}")
    if not low <= value <= high:
        raise ValueError(f"{where} must be between {low:g} and {high:g}, not {float(value):g}")
    return float(value)


def json_bool(value: Any, where: str) -> bool:
    """true or false only: "no", 0 and null are refused, not read as Python would (``bool("no")`` is True)."""
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, not {_show(value)}")
    return value


def json_path(value: Any, where: str) -> str:
    """A file path: a string without NUL bytes (no file system takes them) of a sane length."""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, not {_show(value)}")
    if "\0" in value or len(value) > 4096:
        raise ValueError(f"{where} is not a usable file path (a NUL byte, or over 4096 characters)")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, bool, int, float, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "…"


def _names(keys: list[str]) -> str:
    text = ", ".join(repr(k) if any(not c.isprintable() for c in k) else k for k in keys[:5])
    return (text if len(text) <= 120 else text[:117] + "…") + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def parse_expression_list(text: str) -> tuple[float, ...]:
    """'0.1,-2,3e-1' → (0.1, -2.0, 0.3); ``ValueError`` naming the bad item."""
    items = [s.strip() for s in text.replace(";", ",").split(",")]
    if not items or items == [""]:
        raise ValueError("expression list is empty")
    values = []
    for i, s in enumerate(items):
        try:
            values.append(float(s))
        except ValueError:
            raise ValueError(f"expression item {i + 1} ({s!r}) is not a number") from None
    return tuple(values)


# -- named expression controls (fitted by train/expression_fit.py, stored in a checkpoint's header) ----------

CONTROL_NAMES = ("mouth_open", "smile", "blink", "blink_left", "blink_right", "brows")
CONTROLS_KEY = "expression_controls"  # where a checkpoint's header keeps them


class ExpressionControls:
    """Named expression controls: each a direction in the anchor latent, scaled so that 1 reaches the training
    frames' strongest expression (their 99th percentile) and 0 leaves the face as it is.

    ``directions``: name → Z vector; the edit of a set of values c is Δz = Σ c_name · direction_name.
    """

    def __init__(self, directions: dict[str, list[float]], ranges: dict[str, tuple[float, float]] | None = None):
        self.directions = {name: [float(v) for v in vector] for name, vector in directions.items()}
        self.ranges = {name: (float(lo), float(hi)) for name, (lo, hi) in (ranges or {}).items()}
        sizes = {len(v) for v in self.directions.values()}
        if len(sizes) > 1:
            raise ValueError("expression control directions must all have the latent's size")

    def offset(self, values: dict[str, float]) -> list[float]:
        """Δz for control values (name → value); an unknown name is a ValueError."""
        unknown = sorted(set(values) - set(self.directions))
        if unknown:
            raise ValueError(f"unknown expression control {unknown[0]!r}; known: {', '.join(self.directions)}")
        size = len(next(iter(self.directions.values()), []))
        total = [0.0] * size
        for name, value in values.items():
            for i, v in enumerate(self.directions[name]):
                total[i] += float(value) * v
        return total

    def apply(self, z: Sequence[float], values: dict[str, float]) -> list[float]:
        """The latent ``z`` with the controls' Δz added, each value kept within ±``EXPRESSION_LIMIT`` (where a
        :class:`Motion` takes it)."""
        return [min(max(a + b, -EXPRESSION_LIMIT), EXPRESSION_LIMIT) for a, b in zip(z, self.offset(values))]

    def range(self, name: str) -> tuple[float, float]:
        return self.ranges.get(name, (-1.0, 1.0) if name == "brows" else (0.0, 1.0))

    def to_json(self) -> dict:
        return {"directions": self.directions, "ranges": {k: list(v) for k, v in self.ranges.items()}}

    @classmethod
    def from_json(cls, data: dict) -> ExpressionControls:
        if not isinstance(data, dict) or not isinstance(data.get("directions"), dict):
            raise ValueError("expression controls must be an object with 'directions'")
        return cls(data["directions"], {k: tuple(v) for k, v in (data.get("ranges") or {}).items()})


__all__ = ["Motion", "ModelMotion", "MOTION_RANGES", "EXPRESSION_LIMIT", "Keyframe", "KeyframeAnimation",
           "parse_expression_list", "INTERPOLATION_MODES", "TURN_FIELDS", "SHIFT_FIELDS", "PLACEMENT_FIELDS",
           "POSE_FIELDS", "interpolate_latents", "MAX_DURATION", "MAX_JSON_BYTES", "read_json_file", "parse_json",
           "json_number", "json_bool", "json_path", "CONTROL_NAMES", "CONTROLS_KEY",
           "ExpressionControls"]
