"""Live reenactment from the webcam panel: starting and stopping the session, recording, the virtual camera
(:mod:`.virtual_camera`), and what the window shows meanwhile."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from ..messages import FrameResult
from ..webcam import WebcamSession
from ..webcam_panel import WebcamPanel
from .document import DocumentController
from .editing import EditController
from .feedback import Feedback
from .virtual_camera import VirtualCameraController


class LiveController(QObject):
    """Drives :class:`WebcamSession` from the panel; while it runs, edits do not render."""

    started = Signal()  # the window shows the driving frame beside the result
    stopped = Signal()  # the edit view comes back
    frameShown = Signal(object)  # FrameResult of the live loop

    def __init__(self, session: WebcamSession, panel: WebcamPanel, document: DocumentController,
                 edit: EditController, feedback: Feedback, dialog_parent: QWidget) -> None:
        super().__init__()
        self.session, self.panel, self.document, self.edit, self.feedback = session, panel, document, edit, feedback
        self._dialog_parent = dialog_parent
        self.active = False  # frames are coming (between the first frame and the stop)
        self._source_fps = 25.0  # recordings play at the source's rate
        session.started.connect(self._on_started)
        session.stopped.connect(self._on_stopped)
        session.frameReady.connect(self._on_frame)
        session.recordingStopped.connect(self._on_recording_stopped)
        session.sinkFailed.connect(lambda message: feedback.error("The frame output stopped", message))
        panel.startRequested.connect(self.start)
        panel.stopRequested.connect(session.stop)
        panel.referenceRequested.connect(session.set_reference)
        panel.settingsChanged.connect(session.update_settings)
        panel.recordRequested.connect(self.toggle_recording)
        self.virtual_camera = VirtualCameraController(session, panel, document)

    def start(self, spec: str) -> None:
        problem = ("Load a model and a photo first." if not self.edit.can_render
                   else "Choose a camera index, a video file or an image folder." if not spec else "")
        if problem:
            self.panel.set_running(False)
            self.feedback.error("Cannot start the webcam", problem)
            return
        self.feedback.busy(f"Opening {spec}…")
        self.session.start(spec, self.panel.settings(), pace=not spec.isdigit(), loop=self.panel.loop_check.isChecked())

    def _on_started(self, fps: float) -> None:
        self.active = self.edit.live = True
        self._source_fps = fps if fps > 0 else 25.0
        self.panel.set_running(True)
        self.feedback.idle("Webcam running")
        self.started.emit()

    def _on_stopped(self, reason: str, is_error: bool) -> None:
        was_active = self.active
        self.active = self.edit.live = False
        self.panel.set_running(False)
        self.feedback.idle(reason or "Webcam stopped", 6000)
        if is_error:
            self.feedback.error("Webcam stopped", reason)
        if was_active or is_error:
            self.stopped.emit()
            self.edit.request_render()

    def _on_frame(self, frame: FrameResult) -> None:
        if self.active:  # else a late frame after the stop
            self.panel.add_result(frame)
            self.frameShown.emit(frame)

    def toggle_recording(self, on: bool) -> None:
        if not on:
            self.session.stop_recording()
            self.panel.set_recording(False)
            return
        default = str(Path(self.document.last_folder()) / "recording.mp4")
        path, _ = QFileDialog.getSaveFileName(self._dialog_parent, "Record to", default, "MP4 video (*.mp4)")
        if not path:
            self.panel.set_recording(False)
            return
        path = path if Path(path).suffix else path + ".mp4"
        self.session.start_recording(path, self._source_fps)
        self.panel.set_recording(True)
        self.feedback.note(f"Recording to {path}", 0)

    def _on_recording_stopped(self, path: str, error: str) -> None:
        self.panel.set_recording(False)
        if error:
            self.feedback.error("Recording failed", error)
        else:
            self.feedback.note(f"Saved the recording {path}", 6000)
