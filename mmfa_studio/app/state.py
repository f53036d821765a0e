"""The editing state: a plain object that owns the current motion and tells its views when it changes.

Views (sliders, the timeline, the render worker) listen to :attr:`MotionState.changed`; they never talk to
each other. The motion is the engine's frozen ``Motion`` dataclass, handled here only through
``dataclasses.replace``, so this module needs neither the engine nor torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from ..motion import Motion


@dataclass(frozen=True)
class ParamSpec:
    """A scalar motion field as the editor shows it."""

    name: str
    label: str
    unit: str
    minimum: float
    maximum: float
    default: float
    decimals: int
    tooltip: str = ""


# Ranges cover what the model renders plausibly (cf. LivePortrait's editor: ±20–25° yaw, ±15–20° pitch/roll).
POSE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("yaw", "Yaw", "°", -45.0, 45.0, 0.0, 1, "Turn the head; + turns the face to the image right"),
    ParamSpec("pitch", "Pitch", "°", -30.0, 30.0, 0.0, 1, "Tilt the head; + tilts the face up"),
    ParamSpec("roll", "Roll", "°", -30.0, 30.0, 0.0, 1, "Lean the head; + turns it clockwise on screen"),
    ParamSpec("scale", "Scale", "×", 0.7, 1.4, 1.0, 2, "Head size relative to the source"),
    ParamSpec("tx", "Shift x", "norm", -0.3, 0.3, 0.0, 3, "Horizontal shift; 0.1 = 5 % of the image width"),
    ParamSpec("ty", "Shift y", "norm", -0.3, 0.3, 0.0, 3, "Vertical shift (+ is down); 0.1 = 5 % of the height"),
    ParamSpec("tz", "Shift z", "norm", -0.3, 0.3, 0.0, 3, "Depth shift (+ is away from the camera)"),
)
STRENGTH = ParamSpec("expression_strength", "Strength", "×", 0.0, 2.0, 1.0, 2, "Expression strength")
EXPRESSION_RANGE = 3.0  # latent sliders span ±3 σ of the VAE prior
PARAM_BY_NAME = {p.name: p for p in (*POSE_PARAMS, STRENGTH)}


class MotionState(QObject):
    """The current motion (an engine ``Motion``) plus the source's own expression latent.

    ``changed(motion)`` fires after every change, ``sourceExpressionChanged`` when a new photo brings its own
    expression (the values the expression sliders show when the motion says "the source's own").
    """

    changed = Signal(object)
    sourceExpressionChanged = Signal(object)

    def __init__(self, motion: Motion | None = None) -> None:
        super().__init__()
        self._motion = motion
        self.source_expression: tuple[float, ...] | None = None

    @property
    def motion(self) -> Motion | None:
        return self._motion

    @property
    def ready(self) -> bool:
        return self._motion is not None

    def set_motion(self, motion: Motion | None) -> None:
        if motion == self._motion:
            return
        self._motion = motion
        self.changed.emit(motion)

    def with_value(self, name: str, value: float) -> Motion:
        """The current motion with one scalar field changed (not applied)."""
        return replace(self._motion, **{name: float(value)})

    def effective_expression(self) -> tuple[float, ...] | None:
        """The latent the expression sliders show: the motion's own, else the source's."""
        if self._motion is None:
            return None
        if self._motion.expression is not None:
            return tuple(self._motion.expression)
        return self.source_expression

    def with_expression_value(self, index: int, value: float) -> Motion:
        latent = list(self.effective_expression() or ())
        if index >= len(latent):
            raise IndexError(f"expression dimension {index} out of range ({len(latent)})")
        latent[index] = float(value)
        return replace(self._motion, expression=tuple(latent))

    def with_expression(self, latent: Sequence[float] | None) -> Motion:
        return replace(self._motion, expression=None if latent is None else tuple(float(v) for v in latent))

    def set_source_expression(self, latent: Sequence[float] | None) -> None:
        self.source_expression = None if latent is None else tuple(float(v) for v in latent)
        self.sourceExpressionChanged.emit(self.source_expression)

