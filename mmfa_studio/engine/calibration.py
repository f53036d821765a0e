"""Pose calibration: the user's degrees → the model angles that render them.

Turning the keypoints by θ does not turn the rendered face by θ: the dense motion and generator carry part of
the turn. A calibration, measured per checkpoint (``mmfa-studio calibrate``, ``eval/calibrate.py``) and kept in
its header, inverts that response so an edit of yaw 10° turns the face 10°, within the model's reach: the
farthest measured model angle that still turned the face further. A command past the reach stays at it: the
turn saturates instead of breaking the face.

The types say which side of it a motion is on: a :class:`~mmfa_studio.motion.Motion` holds the user's degrees
(sliders, keyframes, the ``render`` command), a :class:`~mmfa_studio.motion.ModelMotion` model angles;
:meth:`PoseCalibration.to_model_motion` is the one step from the first to the second. Reenactment builds
``ModelMotion`` directly: its turns are a driver's, read by the tracker, which is how the model was trained to
take them (``driving_motion: tracker``), and its landmark movement carries the rest of the turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..motion import TURN_FIELDS, ModelMotion, Motion

AXES = TURN_FIELDS  # ("yaw", "pitch", "roll")
METADATA_KEY = "pose_calibration"  # where a checkpoint's header keeps it
MIN_STEP_DEG = 0.5  # a larger model angle counts as turning further only if the render turns this much more


Points = tuple[tuple[float, float], ...]  # (commanded°, model°), increasing in both, through (0, 0)


@dataclass(frozen=True)
class PoseCalibration:
    """Per axis, the points (commanded°, model°) of the inverse response; an axis with none is the identity."""

    yaw: Points = ()
    pitch: Points = ()
    roll: Points = ()

    def __post_init__(self) -> None:
        for axis in AXES:
            points = tuple((float(c), float(m)) for c, m in getattr(self, axis))
            if points:
                table = np.asarray(points)
                if not np.all(np.isfinite(table)) or np.any(np.diff(table, axis=0) <= 0):
                    raise ValueError(f"pose calibration for {axis} must increase in both columns: {points}")
                if not any(c == 0 and m == 0 for c, m in points):
                    raise ValueError(f"pose calibration for {axis} must pass through (0, 0)")
            object.__setattr__(self, axis, points)

    @property
    def is_identity(self) -> bool:
        return not (self.yaw or self.pitch or self.roll)

    def reach(self, axis: str) -> tuple[float, float] | None:
        """The farthest turns (degrees, most negative and most positive) a command on ``axis`` gives; None when the
        axis is not calibrated (no known limit)."""
        points = getattr(self, axis)
        return (points[0][0], points[-1][0]) if points else None

    def to_model(self, yaw: float, pitch: float, roll: float) -> tuple[float, float, float]:
        """The model angles that render a commanded (yaw, pitch, roll) change, in degrees."""
        return self._map("yaw", yaw), self._map("pitch", pitch), self._map("roll", roll)

    def to_model_motion(self, motion: Motion) -> ModelMotion:
        """The motion in model angles: a relative :class:`Motion`'s turns (the user's degrees) go through the
        calibration; an absolute pose is in model angles already, and a :class:`ModelMotion` is returned as is."""
        if isinstance(motion, ModelMotion):
            return motion
        model = motion.as_model_angles()
        if not motion.relative or self.is_identity:
            return model
        return replace(model, **dict(zip(AXES, self.to_model(*motion.turn))))

    def _map(self, axis: str, degrees: float) -> float:
        points = getattr(self, axis)
        if not points:
            return float(degrees)
        commanded, model = zip(*points)
        return float(np.interp(degrees, commanded, model))  # constant past the ends: the model's reach

    @classmethod
    def fit(cls, response: Mapping[str, Mapping[float, float]]) -> PoseCalibration:
        """Invert a measured response {axis: {model°: measured°}} (e.g. medians over many sources).

        On each side of zero the points are taken outward while the measured turn keeps growing (by at least
        ``MIN_STEP_DEG``), so the calibration stops at the model's reach. An axis that is absent stays identity;
        ``ValueError`` when a side of an axis does not turn at all.
        """
        tables = {}
        for axis, measured in response.items():
            if axis not in AXES:
                raise ValueError(f"unknown pose axis {axis!r}")
            points = [(0.0, 0.0)]
            for sign in (1, -1):
                reach = 0.0
                for angle in sorted((a for a in measured if a * sign > 0), key=abs):
                    turn = float(measured[angle]) * sign
                    if not np.isfinite(turn) or turn < reach + MIN_STEP_DEG:
                        break
                    reach = turn
                    points.append((sign * turn, float(angle)))
                if reach == 0.0:
                    side = "positive" if sign > 0 else "negative"
                    raise ValueError(f"the render does not turn {axis} at any measured {side} angle: "
                                     "cannot calibrate")
            tables[axis] = tuple(sorted(points))
        return cls(**tables)

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {axis: [list(p) for p in getattr(self, axis)] for axis in AXES if getattr(self, axis)}

    @classmethod
    def from_dict(cls, data: object) -> PoseCalibration:
        """From :meth:`to_dict`'s form; ``ValueError`` with one line for anything else."""
        if not isinstance(data, Mapping) or set(data) - set(AXES):
            raise ValueError(f"a pose calibration is an object with keys among {', '.join(AXES)}")
        try:
            return cls(**{axis: tuple((float(c), float(m)) for c, m in points) for axis, points in data.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad pose calibration: {exc}") from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> PoseCalibration:
        """The calibration in a checkpoint's metadata, or the identity when it has none."""
        return cls.from_dict(metadata[METADATA_KEY]) if METADATA_KEY in metadata else cls()
