"""The editing panel: one labelled slider (with unit and reset) per motion parameter and expression dimension."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import signals_blocked

from .state import EXPRESSION_RANGE, POSE_PARAMS, STRENGTH, ParamSpec

if TYPE_CHECKING:
    from ..motion import Motion

# Below this many pixels of keypoint movement (engine.expressions.reach) the latent sliders change nothing one
# can see, and the panel says so rather than leave the user dragging sliders that seem broken.
VISIBLE_EXPRESSION_PX = 2.0


class ParamSlider(QWidget):
    """``Name (unit)  [====o====] 12.5  ↺`` — emits ``edited(value)`` only for user changes."""

    edited = Signal(float)

    def __init__(self, spec: ParamSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(f"{spec.label} ({spec.unit})" if spec.unit else spec.label)
        self.label.setMinimumWidth(92)
        self.label.setToolTip(spec.tooltip)
        self.slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(spec.minimum, spec.maximum)
        self.slider.setDecimals(spec.decimals)
        self.slider.setSingleStep(10 ** -spec.decimals if spec.decimals else 1.0)
        self.slider.setValue(spec.default)
        self.slider.setToolTip(spec.tooltip)
        self.reset = QToolButton()
        self.reset.setText("↺")
        self.reset.setToolTip(f"Reset {spec.label.lower()} to {spec.default:g}")
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.reset)
        self.slider.valueChanged.connect(lambda v: self.edited.emit(float(v)))
        self.reset.clicked.connect(lambda: self.slider.setValue(spec.default))

    def value(self) -> float:
        return float(self.slider.value())

    def set_value_silently(self, value: float) -> None:
        with signals_blocked(self.slider):
            self.slider.setValue(min(max(value, self.spec.minimum), self.spec.maximum))


class EditorPanel(QWidget):
    """Pose, scale, translation and expression controls. Purely a view: emits edits, shows the state."""

    valueEdited = Signal(str, float)  # motion field name, value
    expressionEdited = Signal(int, float)  # latent index, value
    controlsEdited = Signal(object)  # {control name: value}: the named controls, on the source's own expression
    expressionFromPhotoRequested = Signal()
    randomExpressionRequested = Signal()
    neutralExpressionRequested = Signal()
    sourceExpressionRequested = Signal()
    resetAllRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        pose_box = QGroupBox("Head pose")
        pose_layout = QVBoxLayout(pose_box)
        self.sliders: dict[str, ParamSlider] = {}
        for spec in POSE_PARAMS:
            row = ParamSlider(spec)
            row.edited.connect(lambda v, n=spec.name: self.valueEdited.emit(n, v))
            self.sliders[spec.name] = row
            pose_layout.addWidget(row)
        reset_all = QPushButton("Reset pose")
        reset_all.clicked.connect(self.resetAllRequested)
        pose_layout.addWidget(reset_all)
        outer.addWidget(pose_box)

        expr_box = QGroupBox("Expression")
        expr_layout = QVBoxLayout(expr_box)
        buttons = QGridLayout()
        self.from_photo_button = QPushButton("From photo…")
        self.from_photo_button.setToolTip("Copy the expression of another photo")
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Sample an expression from the model's prior (Ctrl+R)")
        self.neutral_button = QPushButton("Neutral")
        self.neutral_button.setToolTip("The prior's mean expression (all latents 0)")
        self.source_button = QPushButton("Source's own")
        self.source_button.setToolTip("The expression of the source photo")
        buttons.addWidget(self.from_photo_button, 0, 0)
        buttons.addWidget(self.random_button, 0, 1)
        buttons.addWidget(self.neutral_button, 1, 0)
        buttons.addWidget(self.source_button, 1, 1)
        self.from_photo_button.clicked.connect(self.expressionFromPhotoRequested)
        self.random_button.clicked.connect(self.randomExpressionRequested)
        self.neutral_button.clicked.connect(self.neutralExpressionRequested)
        self.source_button.clicked.connect(self.sourceExpressionRequested)
        expr_layout.addLayout(buttons)
        self.expression_note = QLabel()
        self.expression_note.setWordWrap(True)
        self.expression_note.setStyleSheet("color: #b35c00;")
        self.expression_note.hide()
        expr_layout.addWidget(self.expression_note)
        strength = ParamSlider(STRENGTH)
        strength.edited.connect(lambda v: self.valueEdited.emit(STRENGTH.name, v))
        self.sliders[STRENGTH.name] = strength
        expr_layout.addWidget(strength)
        self.controls_box = QGroupBox("Named controls")
        self.controls_box.setToolTip("Each moves one part of the face from the source's own expression: 1 is the "
                                     "strongest the model saw in training, 0 none.")
        self.controls_layout = QVBoxLayout(self.controls_box)
        self.control_sliders: dict[str, ParamSlider] = {}
        self.controls_box.hide()
        expr_layout.addWidget(self.controls_box)
        self.latent_toggle = QPushButton("Latent sliders ▸")
        self.latent_toggle.setCheckable(True)
        self.latent_toggle.setToolTip("Show every dimension of the expression latent")
        expr_layout.addWidget(self.latent_toggle)
        self.latent_container = QWidget()
        self.latent_layout = QVBoxLayout(self.latent_container)
        self.latent_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.latent_container)
        scroll.setMinimumHeight(160)
        expr_layout.addWidget(scroll, 1)
        expr_layout.addStretch()  # with the latent sliders folded away, the rows stay together at the top
        self._latent_scroll = scroll
        self.latent_toggle.toggled.connect(self._show_latents)
        outer.addWidget(expr_box, 1)
        self.latent_sliders: list[ParamSlider] = []
        self.setEnabled(False)

    def set_pose_reach(self, reach: dict[str, tuple[float, float]]) -> None:
        """Tell, on each pose slider, how far this model can turn the face (beyond it a command stays there);
        an axis missing from ``reach`` has no known limit."""
        for name in ("yaw", "pitch", "roll"):
            row = self.sliders[name]
            tip = row.spec.tooltip
            if name in reach:
                low, high = reach[name]
                tip += f"\nThis model turns the face {low:+.0f}° to {high:+.0f}° at most; a larger value stays there."
            row.slider.setToolTip(tip)

    def set_expression_reach(self, pixels: float | None) -> None:
        """Warn, above the sliders, when one expression latent at ±3 σ moves this model's face by only ``pixels``;
        None (unknown) or a visible reach hides the warning."""
        weak = pixels is not None and pixels < VISIBLE_EXPRESSION_PX
        if weak:
            self.expression_note.setText(
                f"One expression slider moves this model's face by at most {pixels:.1f} px, so these sliders "
                "barely change it. Webcam reenactment moves the mouth and eyes through the face tracker instead.")
            self.expression_note.setToolTip("Its expression latent did not learn to carry expressions (for the "
                                            "bundled model, models/MODEL_CARD.md says why).")
        self.expression_note.setVisible(weak)

    def _show_latents(self, shown: bool) -> None:
        self._latent_scroll.setVisible(shown)
        self.latent_toggle.setText("Latent sliders ▾" if shown else "Latent sliders ▸")

    def set_controls(self, controls: Sequence[tuple[str, float, float]]) -> None:
        """One slider per named control (name, minimum, maximum); with none, the latent sliders show unfolded."""
        for row in self.control_sliders.values():
            row.setParent(None)
            row.deleteLater()
        self.control_sliders = {}
        for name, low, high in controls:
            spec = ParamSpec(f"control_{name}", name.replace("_", " "), "", low, high, 0.0, 2,
                             f"{name}: 0 = the source's own, 1 = the strongest in the training data")
            row = ParamSlider(spec)
            row.edited.connect(lambda _v: self.controlsEdited.emit(self.control_values()))
            self.controls_layout.addWidget(row)
            self.control_sliders[name] = row
        self.controls_box.setVisible(bool(controls))
        self.latent_toggle.setVisible(bool(controls))
        self.latent_toggle.setChecked(not controls)
        self._show_latents(not controls)

    def control_values(self) -> dict[str, float]:
        return {name: row.value() for name, row in self.control_sliders.items()}

    def reset_controls(self) -> None:
        """Back to 0 without emitting (the expression was set some other way)."""
        for row in self.control_sliders.values():
            row.set_value_silently(0.0)

    def set_latent_dim(self, dim: int) -> None:
        """Build one slider per expression latent dimension (called when a model is loaded)."""
        for row in self.latent_sliders:
            row.setParent(None)
            row.deleteLater()
        self.latent_sliders = []
        for i in range(dim):
            spec = ParamSpec(f"z{i}", f"z{i + 1}", "σ", -EXPRESSION_RANGE, EXPRESSION_RANGE, 0.0, 2,
                             f"Expression latent {i + 1} in standard deviations of the prior")
            row = ParamSlider(spec)
            row.edited.connect(lambda v, i=i: self.expressionEdited.emit(i, v))
            self.latent_layout.addWidget(row)
            self.latent_sliders.append(row)
        self.latent_layout.addStretch(1)

    def sync(self, motion: Motion | None, expression: Sequence[float] | None) -> None:
        """Show ``motion`` (and the effective expression latent) without emitting edits."""
        if motion is None:
            return
        for name, row in self.sliders.items():
            row.set_value_silently(float(getattr(motion, name)))
        if expression is not None:
            for row, value in zip(self.latent_sliders, expression):
                row.set_value_silently(float(value))
