"""The webcam panel's "Send to virtual camera": every rendered webcam frame also goes to a virtual camera that
video calls and streaming apps can pick (through the engine's :mod:`mmfa_studio.engine.virtual_camera`)."""

from __future__ import annotations

from PySide6.QtCore import QObject

from ..jobs import OpenVirtualCamera
from ..messages import VirtualCameraInfo
from ..webcam import WebcamSession
from ..webcam_panel import WebcamPanel
from ..worker import JobFailure
from .document import DocumentController

DEFAULT_FPS = 30.0  # a driver that does not say its rate (some cameras)
DEFAULT_SIZE = 256  # the render size before a model has loaded
WAITING = "Opens when the webcam starts."
CLOSED_WITH_WEBCAM = "Closed with the webcam; opens again when it starts."


class VirtualCameraController(QObject):
    """While the box is checked and the webcam runs, the session's frame sink is a virtual camera of the panel's
    size at the driver's rate.

    It opens (on the engine thread: a device may take a moment) when the box is checked while the webcam runs, or
    when the webcam starts with it checked; it reopens when the size changes; it closes when the box is
    unchecked or the webcam stops (the box stays checked for the next start), and with the window (the session
    closes its sink). Where none can be opened, or it goes away, the panel says why in one line and the box
    unchecks itself.
    """

    def __init__(self, session: WebcamSession, panel: WebcamPanel, document: DocumentController) -> None:
        super().__init__()
        self.session, self.panel, self.document = session, panel, document
        self.info: VirtualCameraInfo | None = None  # the camera open now
        self._fps: float | None = None  # the running driver's rate; None while the webcam does not run
        self._asked: tuple[int, int, float] | None = None  # the camera open or opening
        self._request = 0  # bumped by every open and close: answers to older ones are ignored
        session.started.connect(self._on_started)
        session.stopped.connect(self._on_stopped)
        session.sinkFailed.connect(self._on_sink_failed)
        panel.virtualCameraToggled.connect(self._on_toggled)
        panel.cameraSizeChanged.connect(self._reopen)

    @property
    def wanted(self) -> bool:
        return self.panel.virtual_camera_check.isChecked()

    # ---------------------------------------------------------------- what the panel and the session say

    def _on_toggled(self, on: bool) -> None:
        if not on:
            self._close("")
        elif self._fps is not None:
            self._open(self._fps)
        else:
            self.panel.set_virtual_camera(True, WAITING)

    def _reopen(self) -> None:
        if self.wanted and self._fps is not None:
            self._open(self._fps)

    def _on_started(self, fps: float) -> None:
        self._fps = fps if fps > 0 else DEFAULT_FPS
        if self.wanted:
            self._open(self._fps)

    def _on_stopped(self, *_: object) -> None:
        self._fps = None
        if self.wanted:
            self._close(CLOSED_WITH_WEBCAM if self._asked is not None else WAITING)

    def _on_sink_failed(self, message: str) -> None:
        if self._asked is not None:  # the session has dropped (and closed) the camera already
            self._forget()
            self.panel.set_virtual_camera(False, _sentence(message))

    # ---------------------------------------------------------------- opening and closing

    def _open(self, fps: float) -> None:
        side = self.document.engine_info.image_size if self.document.engine_info is not None else DEFAULT_SIZE
        width, height = self.panel.camera_size() or (side, side)
        if self._asked == (width, height, fps):
            return  # that camera is open (or opening) already
        self._request += 1
        request, self._asked, self.info = self._request, (width, height, fps), None
        self.panel.set_virtual_camera(True, f"Opening a {width}×{height} virtual camera at {fps:g} fps…")
        handle = self.session.worker.submit(OpenVirtualCamera(width, height, fps, self.session.install_sink))
        handle.returned.connect(lambda info: self._on_opened(request, info))
        handle.errored.connect(lambda failure: self._on_failed(request, failure))

    def _on_opened(self, request: int, info: VirtualCameraInfo) -> None:
        if request == self._request:
            self.info = info
            where = f" to {info.device}" if info.device else ""
            self.panel.set_virtual_camera(True, f"Sending {info.width}×{info.height} at {info.fps:g} fps{where}.")

    def _on_failed(self, request: int, failure: JobFailure) -> None:
        if request == self._request and not failure.cancelled:
            self._close("")  # a camera opened before (another size) goes too
            self.panel.set_virtual_camera(False, _sentence(failure.message))

    def _close(self, text: str) -> None:
        if self._asked is not None:
            self.session.set_sink(None)  # queued behind an open still running: that camera closes too
        self._forget()
        self.panel.set_virtual_camera(self.wanted, text)

    def _forget(self) -> None:
        self._request += 1
        self._asked, self.info = None, None


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]
