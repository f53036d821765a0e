"""The live webcam session: a driving source reenacts the portrait, frame after frame, on the engine thread.

:class:`WebcamSession` is the GUI's side (start, stop, live settings, neutral reference, recording, an
optional frame sink such as a virtual camera); :class:`WebcamLoop` is the loop itself, a generator job on the
engine worker, so other jobs interleave between its frames. The GUI's requests reach the loop through
:class:`_Requests`, which the loop reads once per frame.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from .messages import FrameResult
from .recorder import RealTimeRecorder
from .worker import EngineWorker, JobContext, JobFailure, JobHandle, describe_error

if TYPE_CHECKING:
    from mmfa_studio.engine import FrameSource, Reenactor

STOPPED_BY_SOURCE = "The video source ended."


@dataclass(frozen=True)
class WebcamSettings:
    mirror: bool = True
    transfer: str = "both"  # "both" | "pose" | "expression"
    smoothing: float = 0.5  # 0 = none … 1 = strong
    mode: str = "relative"
    paste_back: bool = False
    follow_position: bool = True  # False: the portrait's head stays put while the driver moves across the frame

    def reenactor_options(self) -> dict[str, object]:
        """The settings as the Reenactor takes them (its constructor and ``configure``)."""
        return {"mode": self.mode, "transfer": self.transfer,
                "smoothing": self.smoothing if self.smoothing > 0 else None, "paste_back": self.paste_back,
                "follow_position": self.follow_position, "detail": False}  # live: the model's crop, for speed


class FrameSink(Protocol):
    """Somewhere every rendered webcam frame also goes (a virtual camera). Called on the engine thread."""

    def send(self, frame_rgb_uint8: np.ndarray) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Requests:
    """The GUI's requests to a running loop, taken by the loop once per frame (thread-safe)."""

    settings: WebcamSettings
    lock: threading.Lock = field(default_factory=threading.Lock)
    settings_changed: bool = False
    reference: bool = False
    record: tuple[str, float] | None = None  # path, fps
    stop_recording: bool = False

    def take(self) -> tuple[WebcamSettings, bool, bool, tuple[str, float] | None, bool]:
        with self.lock:
            taken = self.settings, self.settings_changed, self.reference, self.record, self.stop_recording
            self.settings_changed, self.reference, self.record, self.stop_recording = False, False, None, False
            return taken


class WebcamSession(QObject):
    """Start/stop the live loop and steer it; its signals arrive on the GUI thread."""

    started = Signal(float)  # the source's fps
    stopped = Signal(str, bool)  # why ("" when stopped by the user), is it an error
    frameReady = Signal(object)  # FrameResult (the newest; frames the GUI had no time for are dropped)
    recordingStopped = Signal(str, str)  # path, error message ("" when fine)
    sinkFailed = Signal(str)  # the frame sink raised: it is closed and dropped, the loop goes on

    def __init__(self, worker: EngineWorker, sink: FrameSink | None = None) -> None:
        super().__init__()
        self._worker = worker
        self._sink = sink  # touched on the engine thread only (and at close, once it has stopped)
        self._handle: JobHandle | None = None
        self._loop: WebcamLoop | None = None
        self._announced = False

    @property
    def worker(self) -> EngineWorker:
        """The engine worker the loop runs on (a job that opens a sink goes there too)."""
        return self._worker

    @property
    def running(self) -> bool:
        """A loop is alive (opening, running, or closing after a stop)."""
        return self._handle is not None

    @property
    def reenactor(self) -> Reenactor | None:
        """The running loop's reenactor (for tests)."""
        return self._loop.reenactor if self._loop is not None else None

    def start(self, spec: str, settings: WebcamSettings, pace: bool = True, loop: bool = True) -> None:
        """``pace``: play files in real time (as a camera would); ``loop``: restart files at their end."""
        self.stop()
        live = self._loop = WebcamLoop(self, spec, _Requests(settings), pace=pace, restart=loop)
        self._announced = False
        self._handle = self._worker.submit(live)
        # The lambdas hold the loop, not the handle: a handle that referred to itself would be freed by the
        # garbage collector, on whichever thread it runs.
        self._handle.progress.connect(lambda frame: self._on_frame(live, frame))
        self._handle.returned.connect(lambda reason: self._on_end(live, reason or "", False))
        self._handle.errored.connect(lambda failure: self._on_failed(live, failure))

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def update_settings(self, settings: WebcamSettings) -> None:
        if self._loop is not None:
            with self._loop.requests.lock:
                self._loop.requests.settings, self._loop.requests.settings_changed = settings, True

    def set_reference(self) -> None:
        """Use the next driving frame as the neutral reference."""
        if self._loop is not None:
            with self._loop.requests.lock:
                self._loop.requests.reference = True

    def start_recording(self, path: str, fps: float) -> None:
        if self._loop is not None:
            with self._loop.requests.lock:
                self._loop.requests.record, self._loop.requests.stop_recording = (path, fps), False

    def stop_recording(self) -> None:
        if self._loop is not None:
            with self._loop.requests.lock:
                self._loop.requests.record, self._loop.requests.stop_recording = None, True

    def set_sink(self, sink: FrameSink | None) -> None:
        """Send every rendered frame to ``sink`` from now on (None: to none); the one before is closed."""
        self._worker.submit(lambda context: self._swap_sink(sink), title="Cannot change the frame output")

    def close(self) -> None:
        """Release the sink (call once the engine thread has stopped)."""
        self._swap_sink(None)

    # ---------------------------------------------------------------- engine thread

    @property
    def sink(self) -> FrameSink | None:
        return self._sink

    def install_sink(self, sink: FrameSink | None) -> None:
        """What :meth:`set_sink` does, for a job already on the engine thread (one that has just opened it)."""
        self._swap_sink(sink)

    def _swap_sink(self, sink: FrameSink | None) -> None:
        old, self._sink = self._sink, sink
        if old is not None and old is not sink:
            with contextlib.suppress(Exception):  # a device that fails to close is gone anyway
                old.close()

    def send_to_sink(self, frame: np.ndarray) -> None:
        if self._sink is None:
            return
        try:
            self._sink.send(frame)
        except Exception as exc:  # noqa: BLE001 - e.g. the virtual camera went away: the live view goes on
            self._swap_sink(None)
            self.sinkFailed.emit(describe_error(exc))

    # ---------------------------------------------------------------- GUI thread

    def _on_frame(self, live: WebcamLoop, frame: FrameResult) -> None:
        if live is not self._loop:
            return  # a late frame of a loop already replaced
        if not self._announced:
            self._announced = True
            self.started.emit(frame.source_fps)
        self.frameReady.emit(frame)

    def _on_failed(self, live: WebcamLoop, failure: JobFailure) -> None:
        self._on_end(live, "" if failure.cancelled else failure.message, not failure.cancelled)

    def _on_end(self, live: WebcamLoop, reason: str, is_error: bool) -> None:
        if live is not self._loop:
            return  # replaced by a newer start: that one speaks now
        self._handle, self._loop = None, None
        self.stopped.emit(reason, is_error)


class WebcamLoop:
    """The loop as a generator job: opens the source, yields one FrameResult per driving frame, and releases
    the source, the reenactor and any recording however it ends."""

    title = "Webcam stopped"

    def __init__(self, session: WebcamSession, spec: str, requests: _Requests, pace: bool, restart: bool) -> None:
        self.session, self.spec, self.requests, self.pace, self.restart = session, spec, requests, pace, restart
        self.reenactor: Reenactor | None = None
        self._source: FrameSource | None = None
        self._recorder: RealTimeRecorder | None = None
        self._times: collections.deque[float] = collections.deque(maxlen=30)
        self._seq = 0

    def run(self, context: JobContext) -> Iterator[FrameResult]:
        try:
            frames = self._open(context)
            while True:
                frame = self._step(context, frames)
                if frame is None:
                    return STOPPED_BY_SOURCE
                yield frame
        finally:
            self._close()

    def _open(self, context: JobContext) -> Iterator[np.ndarray]:
        try:
            engine, source = context.state.require_source()
            backend = context.backend
            self._source = backend.open_frame_source(self.spec, pace=self.pace, loop=self.restart)
            frames = iter(self._source)
            settings = self.requests.take()[0]
            self.reenactor = backend.Reenactor(engine, source, fps=float(self._source.fps or 30.0),
                                               **settings.reenactor_options())
        except Exception as exc:
            raise RuntimeError(f"Cannot open {self.spec!r}: {describe_error(exc)}") from exc
        return frames

    def _step(self, context: JobContext, frames: Iterator[np.ndarray]) -> FrameResult | None:
        settings, changed, want_reference, record, stop_recording = self.requests.take()
        reenactor = self.reenactor
        assert reenactor is not None and self._source is not None
        try:
            if changed:  # live: the tracker and the user's neutral reference stay
                reenactor.configure(**settings.reenactor_options())
            if stop_recording:
                self._close_recorder()
            if record is not None:
                self._open_recorder(context, *record)
            start = time.perf_counter()
            driving = next(frames, None)
            if driving is None:
                return None
            if settings.mirror:
                driving = np.ascontiguousarray(driving[:, ::-1])
            if want_reference:
                reenactor.set_reference(driving)
            result = reenactor.process(driving)
        except Exception as exc:  # camera lost, bad frame, engine error
            raise RuntimeError(f"The video source stopped: {describe_error(exc)}") from exc
        rendered = result.frame
        self._record(rendered.crop)
        self.session.send_to_sink(rendered.crop)
        now = time.perf_counter()
        self._times.append(now)
        fps = (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9) if len(self._times) >= 2 else 0.0
        self._seq += 1
        return FrameResult(
            kind="webcam", seq=self._seq, crop=rendered.crop, full=rendered.full, keypoints=rendered.keypoints,
            motion=result.motion, driving=driving, driving_pose=result.driving_pose,
            driving_expression=result.driving_expression, face_found=bool(result.face_found),
            latency_ms=(now - start) * 1000.0, fps=fps, source_fps=float(self._source.fps or 0.0),
        )

    # ---------------------------------------------------------------- recording

    def _open_recorder(self, context: JobContext, path: str, fps: float) -> None:
        self._close_recorder()
        realtime = bool(self._source is not None and (self._source.live or self._source.pace))
        try:
            self._recorder = RealTimeRecorder.open(context.backend.VideoExporter, path, fps, realtime)
        except Exception as exc:  # noqa: BLE001 - an unwritable path: say so, the live view goes on
            self.session.recordingStopped.emit(path, describe_error(exc))

    def _record(self, frame: np.ndarray) -> None:
        if self._recorder is None:
            return
        try:
            self._recorder.write(frame)
        except Exception as exc:  # noqa: BLE001 - e.g. disk full: stop recording, keep the webcam going
            recorder, self._recorder = self._recorder, None
            recorder.abort()
            self.session.recordingStopped.emit(recorder.path, describe_error(exc))

    def _close_recorder(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            recorder.close()
        except Exception as exc:  # noqa: BLE001
            self.session.recordingStopped.emit(recorder.path, describe_error(exc))
            return
        self.session.recordingStopped.emit(recorder.path, "")

    def _close(self) -> None:
        self._close_recorder()
        source, self._source = self._source, None
        if source is not None:
            with contextlib.suppress(Exception):  # closing a lost camera may fail; nothing to do
                source.close()
        reenactor, self.reenactor = self.reenactor, None
        if reenactor is not None:
            with contextlib.suppress(Exception):  # releasing a tracker must not break the app
                reenactor.close()
