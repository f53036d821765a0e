"""The timeline strip: keyframe curves per parameter, a draggable playhead, play/scrub, export."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .state import POSE_PARAMS
from .timeline import Timeline

CURVE_GROUPS = {
    "Pose angles (°)": ("yaw", "pitch", "roll"),
    "Scale and shift": ("scale", "tx", "ty", "tz"),
    "Expression latents": (),  # filled from the model's latent size
}
SAMPLES = 200  # points per curve


class TimelinePanel(QWidget):
    timeChanged = Signal(float)  # scrub or playback: the window shows the interpolated motion
    addKeyRequested = Signal()
    removeKeyRequested = Signal()
    exportRequested = Signal()
    settingsEdited = Signal(float, float)  # duration, fps

    def __init__(self, timeline: Timeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.time = 0.0
        self.latent_dim = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play/pause the timeline (Space)")
        self.add_button = QPushButton("Set keyframe")
        self.add_button.setToolTip("Store the current motion at the playhead (K)")
        self.remove_button = QPushButton("Delete keyframe")
        self.remove_button.setToolTip("Delete the keyframe at the playhead (Shift+K)")
        self.export_button = QPushButton("Export video…")
        self.export_button.setToolTip("Render the timeline to an mp4 (Ctrl+E)")
        self.duration_spin = QDoubleSpinBox()
        self.duration_spin.setRange(0.2, 600.0)
        self.duration_spin.setSuffix(" s")
        self.duration_spin.setValue(timeline.duration)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(1.0, 60.0)
        self.fps_spin.setDecimals(0)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setValue(timeline.fps)
        self.curve_combo = QComboBox()
        self.curve_combo.addItems(list(CURVE_GROUPS))
        self.time_label = QLabel()
        for w in (self.play_button, self.add_button, self.remove_button, self.export_button):
            bar.addWidget(w)
        bar.addWidget(QLabel("Length"))
        bar.addWidget(self.duration_spin)
        bar.addWidget(self.fps_spin)
        bar.addWidget(QLabel("Curves"))
        bar.addWidget(self.curve_combo)
        bar.addStretch(1)
        bar.addWidget(self.time_label)
        layout.addLayout(bar)

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.addLegend(offset=(5, 5))
        self.plot.setMouseEnabled(x=False, y=False)
        self.playhead = pg.InfiniteLine(pos=0.0, angle=90, movable=True, pen=pg.mkPen("#ffffff", width=2))
        self.plot.addItem(self.playhead)
        self.key_markers = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("#ffcc00"), symbol="d")
        self.plot.addItem(self.key_markers)
        self.curves: list[pg.PlotDataItem] = []
        layout.addWidget(self.plot, 1)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self.play_button.toggled.connect(self._on_play)
        self.add_button.clicked.connect(self.addKeyRequested)
        self.remove_button.clicked.connect(self.removeKeyRequested)
        self.export_button.clicked.connect(self.exportRequested)
        self.playhead.sigPositionChanged.connect(lambda line: self._scrub(float(line.value())))
        self.duration_spin.valueChanged.connect(self._settings_edited)
        self.fps_spin.valueChanged.connect(self._settings_edited)
        self.curve_combo.currentIndexChanged.connect(self.refresh)
        timeline.changed.connect(self.refresh)
        self.refresh()

    def set_latent_dim(self, dim: int) -> None:
        self.latent_dim = dim
        self.refresh()

    def _settings_edited(self, *_: object) -> None:
        self.settingsEdited.emit(float(self.duration_spin.value()), float(self.fps_spin.value()))

    def sync_settings(self) -> None:
        for spin, value in ((self.duration_spin, self.timeline.duration), (self.fps_spin, self.timeline.fps)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.refresh()

    # ---------------------------------------------------------------- time

    def set_time(self, t: float, emit: bool = True) -> None:
        t = min(max(float(t), 0.0), self.timeline.duration)
        self.time = t
        self.playhead.blockSignals(True)
        self.playhead.setValue(t)
        self.playhead.blockSignals(False)
        self.time_label.setText(f"{t:5.2f} s / {self.timeline.duration:.2f} s")
        if emit:
            self.timeChanged.emit(t)

    def _scrub(self, t: float) -> None:
        self.set_time(t)

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.time >= self.timeline.duration - 1e-6:
                self.set_time(0.0)
            self._timer.start(int(1000 / max(self.timeline.fps, 1.0)))
        else:
            self._timer.stop()

    def toggle_play(self) -> None:
        self.play_button.toggle()

    def stop(self) -> None:
        self.play_button.setChecked(False)

    def _advance(self) -> None:
        t = self.time + 1.0 / max(self.timeline.fps, 1.0)
        self.set_time(0.0 if t > self.timeline.duration + 1e-9 else t)

    # ---------------------------------------------------------------- curves

    def _names(self) -> list[str]:
        group = self.curve_combo.currentText()
        if group == "Expression latents":
            return [f"z{i + 1}" for i in range(min(self.latent_dim, 8))]
        return list(CURVE_GROUPS[group])

    def refresh(self, *_: object) -> None:
        self.plot.setXRange(0.0, self.timeline.duration, padding=0.01)
        for curve in self.curves:
            self.plot.removeItem(curve)
        self.curves = []
        legend = self.plot.plotItem.legend
        if legend is not None:
            legend.clear()
        keys = self.timeline.keyframes
        if not keys:
            self.key_markers.setData([], [])
            self.set_time(self.time, emit=False)
            return
        times = np.linspace(0.0, self.timeline.duration, SAMPLES)
        motions = [self.timeline.motion_at(t) for t in times]
        key_times = [k.time for k in keys]
        units = {p.name: p for p in POSE_PARAMS}
        for i, name in enumerate(self._names()):
            if name.startswith("z"):
                index = int(name[1:]) - 1
                values = [(m.expression[index] if m.expression is not None and index < len(m.expression) else np.nan)
                          for m in motions]
            else:
                values = [getattr(m, name) for m in motions]
            label = units[name].label if name in units else name
            self.curves.append(self.plot.plot(times, np.asarray(values, dtype=float),
                                              pen=pg.mkPen(pg.intColor(i, hues=8), width=2), name=label))
        self.key_markers.setData(key_times, [0.0] * len(key_times))
        self.set_time(self.time, emit=False)
