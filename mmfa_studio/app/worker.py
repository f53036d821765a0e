"""The one thread that drives the engine.

The GUI thread never waits on the engine: it calls the ``request_*`` / ``start_*`` methods of
:class:`EngineWorker`, which only store the request and wake the worker thread, and it receives results
through Qt signals (queued to the GUI thread automatically, because the worker lives in its own QThread).

Two kinds of requests:

* **jobs** (load a model, open a photo, encode an expression, export a video, a webcam step) run in order;
* **renders** are *latest-wins*: a slider storm overwrites one pending slot, so the engine always renders
  the newest motion and never a backlog of stale ones.

Results that the GUI displays (rendered frames, webcam frames) also go through a one-slot mailbox, so a slow
GUI never accumulates queued frames either: it takes the newest when it gets to it.

The engine package (and with it torch) is imported lazily, in the worker thread, so the window shows at
once; ``backend_loader`` lets tests swap in another engine implementation.
"""

from __future__ import annotations

import collections
import errno
import importlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Qt, Signal, Slot

from .state import EXPRESSION_RANGE


def load_engine_backend() -> SimpleNamespace:
    """The real engine and face helpers, imported on first use (this imports torch: call it off the GUI thread)."""
    engine = importlib.import_module("mmfa_studio.engine")
    face = importlib.import_module("mmfa_studio.face")
    return SimpleNamespace(
        Engine=engine.Engine,
        Motion=engine.Motion,
        EngineError=engine.EngineError,
        Reenactor=engine.Reenactor,
        open_frame_source=engine.open_frame_source,
        VideoExporter=engine.VideoExporter,
        load_image=face.load_image,
    )


def describe_error(exc: BaseException) -> str:
    """One line for a dialog: disk full and permission problems named plainly, engine errors as they are."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        if exc.errno == errno.ENOSPC:
            return f"The disk is full{where}: free some space and try again."
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"No permission to write there{where}: choose another folder."
        if exc.errno == errno.ENOENT:
            return f"Not found{where}: {exc.strerror or exc}"
        return f"{exc.strerror or exc}{where}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class EngineInfo:
    device: str
    precision: str
    model_name: str
    latent_dim: int
    image_size: int
    motion_type: type  # the engine's Motion dataclass (the GUI builds motions without importing the engine)
    pose_reach: dict[str, tuple[float, float]] = field(default_factory=dict)  # axis → farthest turns (°), if known
    expression_reach: float | None = None  # px the expression sliders can move a keypoint (Engine.expression_reach)


@dataclass(frozen=True)
class SourceInfo:
    """A prepared source photo: full image H×W×3, crop S×S×3 (uint8 RGB), the faces found, its own pose/expression."""

    path: str | None
    face_index: int
    image: np.ndarray
    crop: np.ndarray | None
    faces: list
    pose: Any = None
    expression: np.ndarray | None = None
    transform: Any = None  # CropTransform: crop pixels ↔ photo pixels


@dataclass(frozen=True)
class FrameResult:
    """One frame to display. ``crop`` S×S×3, ``full`` H×W×3 or None, ``keypoints`` K×2 crop pixels."""

    kind: str  # "edit" | "webcam"
    seq: int
    crop: np.ndarray
    full: np.ndarray | None
    keypoints: np.ndarray | None
    motion: Any = None
    driving: np.ndarray | None = None  # webcam: the (mirrored) driving frame
    driving_pose: Any = None
    driving_expression: np.ndarray | None = None
    face_found: bool = True
    latency_ms: float = 0.0
    fps: float = 0.0


@dataclass(frozen=True)
class WebcamSettings:
    mirror: bool = True
    transfer: str = "both"  # "both" | "pose" | "expression"
    smoothing: float = 0.5  # 0 = none … 1 = strong
    mode: str = "relative"
    paste_back: bool = False
    follow_position: bool = True  # False: the portrait's head stays put while the driver moves across the frame


@dataclass
class _RenderRequest:
    seq: int
    motion: Any
    paste_back: bool


@dataclass
class _Mailbox:
    """A one-slot box: ``put`` replaces the content and says whether the reader must be notified."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    item: Any = None
    notified: bool = False

    def put(self, item: Any) -> bool:
        with self.lock:
            self.item = item
            if self.notified:
                return False
            self.notified = True
            return True

    def take(self) -> Any:
        with self.lock:
            item, self.item, self.notified = self.item, None, False
            return item


class ExportCancelled(Exception):
    pass


# ----------------------------------------------------------------------------------------------- worker


class EngineWorker(QObject):
    """Lives in the worker thread; every public method may be called from the GUI thread."""

    status = Signal(str)  # progress text while loading
    engineReady = Signal(object)  # EngineInfo
    engineFailed = Signal(str)
    photoLoaded = Signal(str, object)  # path, image (no model: browse only)
    sourceReady = Signal(object)  # SourceInfo
    sourceFailed = Signal(str, str)  # title, message
    frameAvailable = Signal()  # take the newest frame with take_frame()
    expressionReady = Signal(object, str)  # latent (Z,), where it came from
    jobFailed = Signal(str, str)  # title, message
    exportProgress = Signal(int, int)
    exportFinished = Signal(str)
    exportFailed = Signal(str)  # message; "" when cancelled
    webcamStarted = Signal(float)  # source fps
    webcamStopped = Signal(str, bool)  # why ("" when stopped by the user), is it an error
    recordingStopped = Signal(str, str)  # path, error message ("" when fine)

    _wake = Signal()

    def __init__(self, backend_loader: Callable[[], Any] = load_engine_backend) -> None:
        super().__init__()
        self._backend_loader = backend_loader
        self.backend: Any = None
        self.engine: Any = None
        self.source: Any = None  # PreparedSource
        self._lock = threading.Lock()
        self._jobs: collections.deque[tuple[Callable[..., None], tuple]] = collections.deque()
        self._render: _RenderRequest | None = None
        self._posted = False
        self._frames = _Mailbox()
        self._seq = 0
        self.renders_done = 0  # read by tests and the benchmark
        self._export_cancel = threading.Event()
        # webcam loop state (touched only in the worker thread, except the flags)
        self._webcam_running = False
        self._webcam_stop = threading.Event()
        self._webcam_settings = WebcamSettings()
        self._webcam_settings_changed = False
        self._reference_requested = False
        self._frame_iter: Iterator[np.ndarray] | None = None
        self._frame_source: Any = None
        self._reenactor: Any = None
        self._recorder: Any = None
        self._recorder_path = ""
        self._record_realtime, self._record_t0, self._record_fps = False, 0.0, 25.0
        self._record_request: tuple[str, float] | None = None
        self._record_stop = False
        self._webcam_times: collections.deque[float] = collections.deque(maxlen=30)
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    # ---------------------------------------------------------------- queue machinery (any thread)

    def _post(self) -> None:
        with self._lock:
            if self._posted:
                return
            self._posted = True
        self._wake.emit()

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._jobs.append((fn, args))
        self._post()

    def pending(self) -> tuple[int, bool]:
        """(queued jobs, a render pending) — for tests and the benchmark."""
        with self._lock:
            return len(self._jobs), self._render is not None

    @Slot()
    def _drain(self) -> None:
        """Run one job (or the pending render), then re-post if more work remains, so that Qt events interleave."""
        with self._lock:
            self._posted = False
            job = self._jobs.popleft() if self._jobs else None
            render = None
            if job is None:
                render, self._render = self._render, None
        if job is not None:
            fn, args = job
            fn(*args)
        elif render is not None:
            self._do_render(render)
        with self._lock:
            more = bool(self._jobs) or self._render is not None
        if more:
            self._post()

    def take_frame(self) -> FrameResult | None:
        """GUI thread: the newest frame (older ones were dropped), or None."""
        return self._frames.take()

    def _publish(self, frame: FrameResult) -> None:
        if self._frames.put(frame):
            self.frameAvailable.emit()

    # ---------------------------------------------------------------- requests (GUI thread)

    def load_engine(self, checkpoint: str | None, device: str = "auto") -> None:
        self._submit(self._do_load_engine, checkpoint, device)

    def open_source(self, path: str | None, face_index: int | None = None, image: np.ndarray | None = None) -> None:
        self._submit(self._do_open_source, path, face_index, image)

    def request_render(self, motion: Any, paste_back: bool = False) -> int:
        """Latest wins: replaces any render not yet started. Returns the request's sequence number."""
        with self._lock:
            self._seq += 1
            self._render = _RenderRequest(self._seq, motion, paste_back)
            seq = self._seq
        self._post()
        return seq

    def encode_expression(self, path: str) -> None:
        self._submit(self._do_encode_expression, path)

    def sample_expression(self, seed: int | None = None) -> None:
        self._submit(self._do_sample_expression, seed)

    def export_video(self, path: str, motions: Sequence[Any], fps: float, paste_back: bool) -> None:
        self._export_cancel.clear()
        self._submit(self._do_export, path, list(motions), fps, paste_back)

    def cancel_export(self) -> None:
        self._export_cancel.set()

    def start_webcam(self, spec: str, settings: WebcamSettings, pace: bool = True, loop: bool = True) -> None:
        """``pace``: play files in real time (as a camera would); ``loop``: restart files at their end."""
        self._webcam_stop.clear()
        self._submit(self._do_start_webcam, spec, settings, pace, loop)

    def stop_webcam(self) -> None:
        self._webcam_stop.set()
        self._post()

    def update_webcam_settings(self, settings: WebcamSettings) -> None:
        with self._lock:
            self._webcam_settings = settings
            self._webcam_settings_changed = True

    def set_reference(self) -> None:
        """Use the next driving frame as the neutral reference."""
        with self._lock:
            self._reference_requested = True

    def start_recording(self, path: str, fps: float) -> None:
        with self._lock:
            self._record_request = (path, fps)
            self._record_stop = False

    def stop_recording(self) -> None:
        with self._lock:
            self._record_stop = True
            self._record_request = None

    @property
    def webcam_running(self) -> bool:
        return self._webcam_running

    # ---------------------------------------------------------------- jobs (worker thread)

    def _ensure_backend(self) -> Any:
        if self.backend is None:
            self.status.emit("Loading the engine libraries…")
            self.backend = self._backend_loader()
        return self.backend

    def _do_load_engine(self, checkpoint: str | None, device: str) -> None:
        try:
            backend = self._ensure_backend()
            name = Path(checkpoint).name if checkpoint else "bundled model"
            self.status.emit(f"Loading {name}…")
            engine = backend.Engine.load(checkpoint, device=device)
            try:
                expression_reach = engine.expression_reach(EXPRESSION_RANGE)
            except Exception:
                engine.close()
                raise
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message; the app stays usable
            self.engineFailed.emit(describe_error(exc))
            return
        self._close_webcam()
        self._close_engine()  # only now: a failed load keeps the previous model working
        self.engine = engine
        ckpt_name = Path(checkpoint).name if checkpoint else "mmfa-cpu.safetensors (bundled)"
        self.engineReady.emit(
            EngineInfo(
                device=str(engine.device),
                precision=str(engine.precision),
                model_name=ckpt_name,
                latent_dim=int(engine.latent_dim),
                image_size=int(engine.image_size),
                motion_type=backend.Motion,
                pose_reach={axis: reach for axis in ("yaw", "pitch", "roll")
                            if (reach := engine.pose_calibration.reach(axis)) is not None},
                expression_reach=expression_reach,
            )
        )

    def _do_open_source(self, path: str | None, face_index: int | None, image: np.ndarray | None) -> None:
        title = "Cannot open the photo"
        try:
            backend = self._ensure_backend()
            if self.engine is None:
                # No model: still show the photo, so the user can browse.
                picture = image if image is not None else backend.load_image(path)
                self.photoLoaded.emit(path or "", picture)
                return
            self.status.emit(f"Finding the face in {Path(path).name if path else 'the image'}…")
            source = self.engine.prepare_source(image if image is not None else path, face_index=face_index)
        except Exception as exc:  # noqa: BLE001
            self.sourceFailed.emit(title, describe_error(exc))
            return
        self.source = source
        faces = list(getattr(source, "faces", []) or [])
        self.sourceReady.emit(
            SourceInfo(
                path=path,
                face_index=face_index if face_index is not None else 0,
                image=source.image,
                crop=source.crop,
                faces=faces,
                pose=getattr(source, "pose", None),
                expression=np.asarray(source.expression) if getattr(source, "expression", None) is not None else None,
                transform=getattr(source, "transform", None),
            )
        )

    def _do_render(self, request: _RenderRequest) -> None:
        if self.engine is None or self.source is None:
            return
        try:
            frame = self.engine.render(self.source, request.motion, paste_back=request.paste_back)
        except Exception as exc:  # noqa: BLE001
            self.jobFailed.emit("Cannot render this motion", describe_error(exc))
            return
        self.renders_done += 1
        self._publish(
            FrameResult(
                kind="edit",
                seq=request.seq,
                crop=frame.crop,
                full=frame.full,
                keypoints=frame.keypoints,
                motion=request.motion,
            )
        )

    def _do_encode_expression(self, path: str) -> None:
        try:
            if self.engine is None:
                raise RuntimeError("No model is loaded.")
            latent = np.asarray(self.engine.encode_expression(path), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            self.jobFailed.emit("Cannot read an expression from that photo", describe_error(exc))
            return
        self.expressionReady.emit(latent, Path(path).name)

    def _do_sample_expression(self, seed: int | None) -> None:
        try:
            if self.engine is None:
                raise RuntimeError("No model is loaded.")
            latent = np.asarray(self.engine.sample_expression(seed), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            self.jobFailed.emit("Cannot sample an expression", describe_error(exc))
            return
        self.expressionReady.emit(latent, "random")

    def _do_export(self, path: str, motions: list[Any], fps: float, paste_back: bool) -> None:
        try:
            if self.engine is None or self.source is None:
                raise RuntimeError("Load a model and a photo before exporting.")
            total = len(motions)
            self.exportProgress.emit(0, total)
            with self.backend.VideoExporter(path, fps) as exporter:
                for i, motion in enumerate(motions):
                    if self._export_cancel.is_set():
                        exporter.cancel()
                        raise ExportCancelled
                    frame = self.engine.render(self.source, motion, paste_back=paste_back)
                    exporter.write(frame.full if paste_back and frame.full is not None else frame.crop)
                    self.exportProgress.emit(i + 1, total)
        except ExportCancelled:
            self.exportFailed.emit("")
            return
        except Exception as exc:  # noqa: BLE001
            self.exportFailed.emit(describe_error(exc))
            return
        self.exportFinished.emit(path)

    # ---------------------------------------------------------------- webcam loop (worker thread)

    def _make_reenactor(self, settings: WebcamSettings) -> Any:
        """A new Reenactor for these settings (the old one is closed)."""
        self._close_reenactor()
        smoothing = settings.smoothing if settings.smoothing > 0 else None
        fps = float(getattr(self._frame_source, "fps", 0.0) or 30.0)
        return self.backend.Reenactor(
            self.engine, self.source, mode=settings.mode, transfer=settings.transfer, smoothing=smoothing,
            paste_back=settings.paste_back, fps=fps, follow_position=settings.follow_position,
        )

    def _close_reenactor(self) -> None:
        reenactor, self._reenactor = self._reenactor, None
        if reenactor is not None and hasattr(reenactor, "close"):
            try:
                reenactor.close()
            except Exception:  # noqa: BLE001 - releasing a tracker must not break the loop
                pass

    def _do_start_webcam(self, spec: str, settings: WebcamSettings, pace: bool, loop: bool) -> None:
        self._close_webcam()
        try:
            if self.engine is None or self.source is None:
                raise RuntimeError("Load a model and a photo first.")
            self._frame_source = self.backend.open_frame_source(spec, pace=pace, loop=loop)
            self._frame_iter = iter(self._frame_source)
            with self._lock:
                self._webcam_settings = settings
                self._webcam_settings_changed = False
            self._reenactor = self._make_reenactor(settings)
        except Exception as exc:  # noqa: BLE001
            self._close_webcam()
            self.webcamStopped.emit(f"Cannot open {spec!r}: {describe_error(exc)}", True)
            return
        self._webcam_running = True
        self._webcam_times.clear()
        self.webcamStarted.emit(float(getattr(self._frame_source, "fps", 0.0) or 0.0))
        self._submit(self._webcam_step)

    def _webcam_step(self) -> None:
        if not self._webcam_running:
            return
        if self._webcam_stop.is_set():
            self._close_webcam()
            self.webcamStopped.emit("", False)
            return
        with self._lock:
            settings, changed = self._webcam_settings, self._webcam_settings_changed
            self._webcam_settings_changed = False
            want_reference, self._reference_requested = self._reference_requested, False
            record_request, self._record_request = self._record_request, None
            record_stop, self._record_stop = self._record_stop, False
        try:
            if changed:
                # Live change: the tracker and the user's neutral reference stay.
                self._reenactor.configure(mode=settings.mode, transfer=settings.transfer,
                                          smoothing=settings.smoothing if settings.smoothing > 0 else None,
                                          paste_back=settings.paste_back,
                                          follow_position=settings.follow_position)
            if record_stop:
                self._close_recorder()
            if record_request is not None:
                self._open_recorder(*record_request)
            start = time.perf_counter()
            try:
                frame = next(self._frame_iter)
            except StopIteration:
                self._close_webcam()
                self.webcamStopped.emit("The video source ended.", False)
                return
            if settings.mirror:
                frame = np.ascontiguousarray(frame[:, ::-1])
            if want_reference:
                self._reenactor.set_reference(frame)
            result = self._reenactor.process(frame)
            rendered = result.frame
            if self._recorder is not None:
                try:
                    self._record(rendered.crop)
                except Exception as exc:  # noqa: BLE001 - e.g. disk full: stop recording, keep the webcam going
                    self._abort_recorder(describe_error(exc))
        except Exception as exc:  # noqa: BLE001 - camera lost, bad frame, engine error
            self._close_webcam()
            self.webcamStopped.emit(f"The video source stopped: {describe_error(exc)}", True)
            return
        now = time.perf_counter()
        self._webcam_times.append(now)
        fps = 0.0
        if len(self._webcam_times) >= 2:
            fps = (len(self._webcam_times) - 1) / max(self._webcam_times[-1] - self._webcam_times[0], 1e-9)
        self.renders_done += 1
        self._seq += 1
        self._publish(
            FrameResult(
                kind="webcam",
                seq=self._seq,
                crop=rendered.crop,
                full=rendered.full,
                keypoints=rendered.keypoints,
                driving=frame,
                driving_pose=result.driving_pose,
                driving_expression=result.driving_expression,
                face_found=bool(result.face_found),
                latency_ms=(now - start) * 1000.0,
                fps=fps,
            )
        )
        self._submit(self._webcam_step)

    def _open_recorder(self, path: str, fps: float) -> None:
        self._close_recorder()
        try:
            recorder = self.backend.VideoExporter(path, fps)
            recorder.__enter__()
        except Exception as exc:  # noqa: BLE001
            self.recordingStopped.emit(path, describe_error(exc))
            return
        self._recorder, self._recorder_path = recorder, path
        source = self._frame_source
        self._record_realtime = bool(getattr(source, "live", False) or getattr(source, "pace", False))
        self._record_t0, self._record_fps = time.perf_counter(), float(fps)

    def _record(self, crop: np.ndarray) -> None:
        """Write a rendered frame so the recording plays at real speed. A real-time source (a camera, a paced
        file) skips frames while rendering lags behind its fps, so the frame is repeated to fill the gap; an
        unpaced file delivers every frame, written once."""
        copies = 1
        if self._record_realtime:
            due = int((time.perf_counter() - self._record_t0) * self._record_fps) + 1
            copies = max(0, due - self._recorder.frames_written)
        for _ in range(copies):
            self._recorder.write(crop)

    def _close_recorder(self) -> None:
        if self._recorder is None:
            return
        recorder, path = self._recorder, self._recorder_path
        self._recorder = None
        try:
            recorder.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001
            self.recordingStopped.emit(path, describe_error(exc))
            return
        self.recordingStopped.emit(path, "")

    def _abort_recorder(self, message: str) -> None:
        recorder, path = self._recorder, self._recorder_path
        self._recorder = None
        try:
            recorder.cancel()
            recorder.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - already failing; the message below says why
            pass
        self.recordingStopped.emit(path, message)

    def _close_webcam(self) -> None:
        self._webcam_running = False
        self._close_recorder()
        if self._frame_source is not None:
            try:
                self._frame_source.close()
            except Exception:  # noqa: BLE001 - closing a lost camera may fail; nothing to do
                pass
        self._frame_source = None
        self._frame_iter = None
        self._close_reenactor()

    def shutdown(self) -> None:
        """Release the camera, any open recording and the engine (its face trackers)."""
        self._close_webcam()
        self._close_engine()

    def _close_engine(self) -> None:
        engine, self.engine, self.source = self.engine, None, None
        if engine is not None and hasattr(engine, "close"):
            try:
                engine.close()
            except Exception:  # noqa: BLE001
                pass


class WorkerThread:
    """Owns the QThread and the worker; ``stop()`` cancels long work and joins (quit + wait)."""

    def __init__(self, backend_loader: Callable[[], Any] = load_engine_backend) -> None:
        self.thread = QThread()
        self.thread.setObjectName("mmfa-engine")
        self.worker = EngineWorker(backend_loader)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def stop(self, timeout_ms: int = 30_000) -> None:
        if self.thread.isRunning():
            self.worker.cancel_export()
            self.worker.stop_webcam()
            self.thread.quit()  # finishes the job in hand (export and webcam check their stop flags)
            self.thread.wait(timeout_ms)
        if not self.thread.isRunning():
            self.worker.shutdown()  # the thread is gone: closing the camera/recording here is race-free

