"""Webcam reenactment controls: source, start/stop, neutral reference, mirror, transfer, smoothing, record,
a virtual camera output, FPS/latency and live plots of the driving pose and expression."""

from __future__ import annotations

import collections

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import qthrottled

from .messages import FrameResult
from .webcam import WebcamSettings

HISTORY = 200  # samples shown in the plots
TRANSFERS = (("Pose and expression", "both"), ("Pose only", "pose"), ("Expression only", "expression"))
# The virtual camera's frame size (None: the model's render size, unscaled); its rate follows the driver's.
CAMERA_SIZES = (("1280×720", (1280, 720)), ("640×480", (640, 480)), ("1920×1080", (1920, 1080)),
                ("Render size", None))


class WebcamPanel(QWidget):
    startRequested = Signal(str)  # frame source spec: camera index, video path, image folder
    stopRequested = Signal()
    referenceRequested = Signal()
    settingsChanged = Signal(object)  # WebcamSettings
    recordRequested = Signal(bool)
    virtualCameraToggled = Signal(bool)
    cameraSizeChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)

        source_box = QGroupBox("Driving source")
        source_layout = QVBoxLayout(source_box)
        self.source_combo = QComboBox()
        self.source_combo.setEditable(True)
        self.source_combo.addItems(["0", "1", "synthetic"])
        self.source_combo.setToolTip("A camera index, a video file, a folder of images, or 'synthetic' "
                                     "(a moving sample face)")
        pick_row = QHBoxLayout()
        video_button = QPushButton("Video file…")
        folder_button = QPushButton("Image folder…")
        video_button.clicked.connect(self._pick_video)
        folder_button.clicked.connect(self._pick_folder)
        pick_row.addWidget(video_button)
        pick_row.addWidget(folder_button)
        source_layout.addWidget(self.source_combo)
        source_layout.addLayout(pick_row)
        self.loop_check = QCheckBox("Loop files (play them like a live camera)")
        self.loop_check.setChecked(True)
        source_layout.addWidget(self.loop_check)
        layout.addWidget(source_box)

        controls = QGroupBox("Reenactment")
        form = QFormLayout(controls)
        run_row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setToolTip("Start/stop driving the portrait (F5)")
        self.reference_button = QPushButton("Set neutral reference")
        self.reference_button.setToolTip("Take the next driving frame as the neutral face that motion is measured from")
        self.reference_button.setEnabled(False)
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.reference_button)
        form.addRow(run_row)
        self.mirror_check = QCheckBox("Mirror the driving video")
        self.mirror_check.setChecked(True)
        form.addRow(self.mirror_check)
        self.transfer_combo = QComboBox()
        for label, value in TRANSFERS:
            self.transfer_combo.addItem(label, value)
        form.addRow("Transfer", self.transfer_combo)
        self.follow_check = QCheckBox("Follow the head across the frame")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("Move and zoom the portrait's head as the driver's moves. Uncheck it when you "
                                     "move around: the head then stays put (turns and expression still follow), "
                                     "where large shifts would tear the neck and collar.")
        form.addRow(self.follow_check)
        self.smoothing_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0.0, 1.0)
        self.smoothing_slider.setDecimals(2)
        self.smoothing_slider.setValue(0.5)
        self.smoothing_slider.setToolTip("0 = raw tracking, 1 = strong smoothing (less jitter, more lag)")
        form.addRow("Smoothing", self.smoothing_slider)
        self.record_button = QPushButton("Record…")
        self.record_button.setCheckable(True)
        self.record_button.setEnabled(False)
        form.addRow(self.record_button)
        self.fps_label = QLabel("– fps")
        self.latency_label = QLabel("– ms")
        self.face_label = QLabel("")
        stats = QHBoxLayout()
        stats.addWidget(self.fps_label)
        stats.addWidget(self.latency_label)
        stats.addWidget(self.face_label, 1)
        form.addRow("Speed", stats)
        layout.addWidget(controls)
        layout.addWidget(self._build_virtual_camera())

        pg.setConfigOptions(antialias=False)
        self.pose_plot = pg.PlotWidget(title="Driving pose (°)")
        self.pose_plot.addLegend(offset=(5, 5))
        self.pose_plot.setMinimumHeight(120)
        colours = ("#e6550d", "#31a354", "#3182bd")
        self.pose_curves = [self.pose_plot.plot(pen=pg.mkPen(c, width=2), name=n)
                            for c, n in zip(colours, ("yaw", "pitch", "roll"))]
        self.expression_plot = pg.PlotWidget(title="Driving expression (latent)")
        self.expression_plot.setMinimumHeight(120)
        self.expression_curves: list[pg.PlotDataItem] = []
        layout.addWidget(self.pose_plot, 1)
        layout.addWidget(self.expression_plot, 1)

        self._pose_history: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=HISTORY)
        self._expression_history: collections.deque[np.ndarray] = collections.deque(maxlen=HISTORY)
        self.frames_received = 0

        self.start_button.toggled.connect(self._on_start_toggled)
        self.reference_button.clicked.connect(self.referenceRequested)
        self.record_button.toggled.connect(self.recordRequested)
        self.mirror_check.toggled.connect(self._emit_settings)
        self.transfer_combo.currentIndexChanged.connect(self._emit_settings)
        self.follow_check.toggled.connect(self._emit_settings)
        self.smoothing_slider.valueChanged.connect(self._emit_settings_throttled)
        self.virtual_camera_check.toggled.connect(self.virtualCameraToggled)
        self.camera_size_combo.currentIndexChanged.connect(self.cameraSizeChanged)

    def _build_virtual_camera(self) -> QGroupBox:
        box = QGroupBox("Output")
        box_layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.virtual_camera_check = QCheckBox("Send to virtual camera")
        self.virtual_camera_check.setToolTip(
            "Video calls and streaming apps can pick the animated portrait as a camera, at the driver's frame rate. "
            "Needs pip install 'mmfa-studio[virtual-camera]' and v4l2loopback (Linux) or the OBS virtual camera.")
        self.camera_size_combo = QComboBox()
        for label, size in CAMERA_SIZES:
            self.camera_size_combo.addItem(label, size)
        self.camera_size_combo.setToolTip("The frame size the virtual camera offers; the portrait is scaled to fit, "
                                          "on black. Render size: the model's own, unscaled.")
        row.addWidget(self.virtual_camera_check, 1)
        row.addWidget(self.camera_size_combo)
        box_layout.addLayout(row)
        self.virtual_camera_label = QLabel("")  # one line: what the virtual camera is doing, or why there is none
        self.virtual_camera_label.setWordWrap(True)
        box_layout.addWidget(self.virtual_camera_label)
        return box

    # ---------------------------------------------------------------- settings

    def settings(self) -> WebcamSettings:
        return WebcamSettings(
            mirror=self.mirror_check.isChecked(),
            transfer=str(self.transfer_combo.currentData()),
            smoothing=float(self.smoothing_slider.value()),
            follow_position=self.follow_check.isChecked(),
        )

    def _emit_settings(self, *_: object) -> None:
        self.settingsChanged.emit(self.settings())

    @qthrottled(timeout=150, leading=False)
    def _emit_settings_throttled(self, *_: object) -> None:
        self._emit_settings()

    def source_spec(self) -> str:
        return self.source_combo.currentText().strip()

    def set_source_spec(self, spec: str) -> None:
        if self.source_combo.findText(spec) < 0:
            self.source_combo.addItem(spec)
        self.source_combo.setCurrentText(spec)

    def _pick_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Driving video", "",
                                              "Videos (*.mp4 *.mov *.avi *.mkv *.webm);;All files (*)")
        if path:
            self.set_source_spec(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of driving images")
        if path:
            self.set_source_spec(path)

    # ---------------------------------------------------------------- running state

    def _on_start_toggled(self, on: bool) -> None:
        if on:
            spec = self.source_spec()
            self._pose_history.clear()
            self._expression_history.clear()
            self.startRequested.emit(spec)
        else:
            self.stopRequested.emit()

    def set_running(self, running: bool) -> None:
        """Reflect the worker's state (it may stop by itself: video ended, camera lost)."""
        self.start_button.blockSignals(True)
        self.start_button.setChecked(running)
        self.start_button.setText("Stop" if running else "Start")
        self.start_button.blockSignals(False)
        self.reference_button.setEnabled(running)
        self.record_button.setEnabled(running)
        if not running:
            self.set_recording(False)

    def camera_size(self) -> tuple[int, int] | None:
        """The virtual camera's width and height chosen; None: the render size."""
        size = self.camera_size_combo.currentData()
        return None if size is None else (int(size[0]), int(size[1]))

    def set_virtual_camera(self, on: bool, text: str) -> None:
        """Reflect the virtual camera's state (it may fail to open, or go away) and say it in one line."""
        self.virtual_camera_check.blockSignals(True)
        self.virtual_camera_check.setChecked(on)
        self.virtual_camera_check.blockSignals(False)
        self.virtual_camera_label.setText(text)

    def set_recording(self, on: bool) -> None:
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.setText("Stop recording" if on else "Record…")
        self.record_button.blockSignals(False)

    def add_result(self, frame: FrameResult) -> None:
        self.frames_received += 1
        self.fps_label.setText(f"{frame.fps:.1f} fps")
        self.latency_label.setText(f"{frame.latency_ms:.0f} ms")
        self.face_label.setText("" if frame.face_found else "no face in the driving frame")
        if frame.driving_pose is not None:
            p = frame.driving_pose
            self._pose_history.append((float(p.yaw), float(p.pitch), float(p.roll)))
        if frame.driving_expression is not None:
            self._expression_history.append(np.asarray(frame.driving_expression, dtype=float).ravel())
        self._refresh_plots()

    @qthrottled(timeout=100)
    def _refresh_plots(self) -> None:
        """At most 10 plot redraws a second, however fast frames arrive."""
        if self._pose_history:
            data = np.asarray(self._pose_history)
            for i, curve in enumerate(self.pose_curves):
                curve.setData(data[:, i])
        if self._expression_history:
            dims = min(len(v) for v in self._expression_history)
            data = np.stack([v[:dims] for v in self._expression_history])
            shown = min(dims, 8)  # the first 8 dimensions keep the plot readable
            while len(self.expression_curves) < shown:
                i = len(self.expression_curves)
                self.expression_curves.append(self.expression_plot.plot(pen=pg.mkPen(pg.intColor(i, hues=8), width=1)))
            for i in range(shown):
                self.expression_curves[i].setData(data[:, i])
