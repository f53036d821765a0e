"""The one thread that drives the engine, and the one way to give it work.

    handle = worker.submit(RenderMotion(motion, paste_back=False, seq=7), coalesce="render")
    handle.returned.connect(show)     # the job's result, delivered on the GUI thread
    handle.errored.connect(report)    # a JobFailure: the job's title and a one-line message, or cancelled
    handle.progress.connect(update)   # the newest value the job reported; older ones were dropped
    handle.cancel()                   # the job sees ``context.cancelled`` and stops

A job is an object with a ``title`` (what an error dialog is titled) and ``run(context)``, see :mod:`.jobs`, or
any callable taking the :class:`JobContext`. Jobs run one at a time, in order, on the engine thread, the only
thread that ever calls the model. Two refinements keep the GUI live:

* **latest wins**: a job submitted with ``coalesce=KEY`` replaces the job of that key not yet started (its
  handle never emits), so a slider storm renders the newest motion and never a backlog of stale ones;
* **loops**: when ``run`` is a generator, it is stepped once per turn and re-queued behind the jobs that came
  in meanwhile; each value it yields is published as progress and it ends when it returns (``returned``),
  raises (``errored``) or is cancelled. The webcam session is such a loop.

Progress goes through a one-slot box per job, so a slow GUI never accumulates queued frames: it takes the
newest when it gets to it. The engine package (and with it torch) is imported lazily, on the engine thread, so
the window shows at once; ``backend_loader`` lets tests swap in another engine implementation.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import importlib
import inspect
import itertools
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

if TYPE_CHECKING:
    from mmfa_studio.engine import (
        Engine,
        FrameSource,
        PreparedSource,
        Reenactor,
        VideoExporter,
    )
    from mmfa_studio.engine.virtual_camera import VirtualCameraSink

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


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


# --------------------------------------------------------------------------------------------- the engine


@dataclass
class EngineBackend:
    """The engine's entry points the jobs use. Mutable on purpose: tests replace one to inject a fault."""

    Engine: type[Engine]
    Reenactor: type[Reenactor]
    open_frame_source: Callable[..., FrameSource]
    VideoExporter: type[VideoExporter]
    load_image: Callable[[str], np.ndarray]  # path → H×W×3 uint8 RGB
    open_virtual_camera: Callable[..., VirtualCameraSink]  # (width, height, fps) → sink, or VirtualCameraUnavailable


def load_engine_backend() -> EngineBackend:
    """The real engine, imported on first use (this imports torch: call it on the engine thread)."""
    engine = importlib.import_module("mmfa_studio.engine")
    face = importlib.import_module("mmfa_studio.face")
    virtual_camera = importlib.import_module("mmfa_studio.engine.virtual_camera")
    return EngineBackend(Engine=engine.Engine, Reenactor=engine.Reenactor, open_frame_source=engine.open_frame_source,
                         VideoExporter=engine.VideoExporter, load_image=face.load_image,
                         open_virtual_camera=virtual_camera.open_virtual_camera)


class NothingLoadedError(RuntimeError):
    """A job needs a model (or a photo) that is not loaded."""


@dataclass
class EngineState:
    """What the jobs share: the loaded engine and the prepared photo. Touched only on the engine thread
    (and at shutdown, once that thread has ended)."""

    backend: EngineBackend | None = None
    engine: Engine | None = None
    source: PreparedSource | None = None

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise NothingLoadedError("No model is loaded.")
        return self.engine

    def require_source(self) -> tuple[Engine, PreparedSource]:
        if self.engine is None or self.source is None:
            raise NothingLoadedError("Load a model and a photo first.")
        return self.engine, self.source

    def close_engine(self) -> None:
        engine, self.engine, self.source = self.engine, None, None
        if engine is not None:
            with contextlib.suppress(Exception):  # releasing a tracker must not break the app
                engine.close()


# ------------------------------------------------------------------------------------------------ jobs


class Job(Protocol[T_co]):
    """Work for the engine thread. ``run`` may return a value or be a generator (a loop, see the module doc)."""

    title: str  # what the error dialog says when it fails, e.g. "Cannot render this motion"

    def run(self, context: JobContext) -> T_co: ...


@dataclass(frozen=True)
class CallableJob(Generic[T]):
    """A plain function as a job."""

    function: Callable[[JobContext], T]
    title: str = "The engine failed"

    def run(self, context: JobContext) -> T:
        return self.function(context)


class JobCancelled(Exception):
    """Raised by a job that saw ``context.cancelled``; the handle reports a cancelled failure."""


@dataclass(frozen=True)
class JobFailure:
    title: str
    message: str  # one line
    cancelled: bool = False


_EMPTY = object()


@dataclass
class _LatestOnly:
    """A one-slot box: ``put`` replaces the content and says whether the reader must be notified."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    item: object = _EMPTY

    def put(self, item: object) -> bool:
        with self.lock:
            was_empty = self.item is _EMPTY
            self.item = item
            return was_empty

    def take(self) -> object:
        with self.lock:
            item, self.item = self.item, _EMPTY
            return item


@dataclass(eq=False)
class _Ticket:
    """A submitted job as the engine thread sees it (plain Python: safe to drop on any thread)."""

    id: int
    job: Job[object]
    coalesce: str | None
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: _LatestOnly = field(default_factory=_LatestOnly)
    loop: Generator[object, None, object] | None = None


class JobHandle(QObject):
    """The GUI's side of one job. Lives on the GUI thread; its signals are emitted there."""

    returned = Signal(object)  # the job's result
    errored = Signal(object)  # JobFailure
    progress = Signal(object)  # the newest reported value
    finished = Signal()  # after returned or errored

    def __init__(self, ticket: _Ticket) -> None:
        super().__init__()
        self._ticket = ticket

    @property
    def title(self) -> str:
        return self._ticket.job.title

    def cancel(self) -> None:
        """Ask the job to stop (any thread); a loop stops before its next step."""
        self._ticket.cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._ticket.cancel.is_set()


class JobContext:
    """What a running job may use: the shared engine state, progress, status text, cancellation."""

    def __init__(self, runner: _Runner, ticket: _Ticket) -> None:
        self._runner, self._ticket = runner, ticket
        self.state = runner.state

    @property
    def backend(self) -> EngineBackend:
        """The engine's entry points (imported on first use: this is where torch loads)."""
        return self._runner.ensure_backend()

    @property
    def cancelled(self) -> bool:
        return self._ticket.cancel.is_set()

    def report_progress(self, value: object) -> None:
        self._runner.post_progress(self._ticket, value)

    def report_status(self, text: str) -> None:
        """A line for the status bar while a slow step runs."""
        self._runner.status.emit(text)

    def replace_engine(self, engine: Engine) -> None:
        """Make ``engine`` the loaded one: running loops (which hold the old one) end first, then it closes."""
        self._runner.end_loops(except_ticket=self._ticket)
        self.state.close_engine()
        self.state.engine = engine


# ---------------------------------------------------------------------------------------------- threads


class _Runner(QObject):
    """Lives on the engine thread and runs the queue. ``submit``/``pending`` may be called from any thread."""

    status = Signal(str)
    jobEnded = Signal(int, object, object)  # ticket id, result, JobFailure or None
    progressPosted = Signal(int)  # ticket id: take the newest value from its box
    _wake = Signal()

    def __init__(self, backend_loader: Callable[[], EngineBackend]) -> None:
        super().__init__()
        self._backend_loader = backend_loader
        self.state = EngineState()
        self._lock = threading.Lock()
        self._queue: collections.deque[_Ticket] = collections.deque()
        self._latest: dict[str, _Ticket] = {}  # coalesced jobs, run when the queue is empty
        self._posted = False
        self.steps_done = 0
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    def ensure_backend(self) -> EngineBackend:
        if self.state.backend is None:
            self.status.emit("Loading the engine libraries…")
            self.state.backend = self._backend_loader()
        return self.state.backend

    def submit(self, ticket: _Ticket) -> _Ticket | None:
        """Queue ``ticket``; returns the latest-wins ticket it replaced, which will never run."""
        replaced = None
        with self._lock:
            if ticket.coalesce is None:
                self._queue.append(ticket)
            else:
                replaced = self._latest.pop(ticket.coalesce, None)  # popped, then re-inserted: keeps the order
                self._latest[ticket.coalesce] = ticket
        self._post()
        return replaced

    def pending(self) -> tuple[int, bool]:
        with self._lock:
            return len(self._queue), bool(self._latest)

    def post_progress(self, ticket: _Ticket, value: object) -> None:
        if ticket.progress.put(value):
            self.progressPosted.emit(ticket.id)

    def _post(self) -> None:
        with self._lock:
            if self._posted:
                return
            self._posted = True
        self._wake.emit()

    @Slot()
    def _drain(self) -> None:
        """Run one job (or one loop step), then re-post if more work remains, so that Qt events interleave."""
        with self._lock:
            self._posted = False
            ticket = self._queue.popleft() if self._queue else None
            if ticket is None and self._latest:
                ticket = self._latest.pop(next(iter(self._latest)))
        if ticket is not None:
            self._step(ticket)
            self.steps_done += 1
        with self._lock:
            more = bool(self._queue or self._latest)
        if more:
            self._post()

    def _step(self, ticket: _Ticket) -> None:
        try:
            if ticket.cancel.is_set():
                raise JobCancelled
            if ticket.loop is None:
                result = ticket.job.run(JobContext(self, ticket))
                if not inspect.isgenerator(result):
                    self.jobEnded.emit(ticket.id, result, None)
                    return
                ticket.loop = result
            value = next(ticket.loop)
        except StopIteration as end:
            self.jobEnded.emit(ticket.id, end.value, None)
        except JobCancelled:
            self._end(ticket, cancelled=True)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message; the app stays usable
            self._end(ticket, JobFailure(ticket.job.title, describe_error(exc)))
        else:
            self.post_progress(ticket, value)
            with self._lock:
                self._queue.append(ticket)

    def _end(self, ticket: _Ticket, failure: JobFailure | None = None, cancelled: bool = False) -> None:
        """Close the ticket's loop (its ``finally`` releases what it holds) and report it ended."""
        if ticket.loop is not None:
            loop, ticket.loop = ticket.loop, None
            with contextlib.suppress(Exception):  # it is ending anyway
                loop.close()
        self.jobEnded.emit(ticket.id, None, failure or JobFailure(ticket.job.title, "", cancelled=cancelled))

    def end_loops(self, except_ticket: _Ticket | None = None) -> None:
        """End every running loop as cancelled (engine thread, or any thread once it has stopped)."""
        with self._lock:
            loops = [t for t in self._queue if t.loop is not None and t is not except_ticket]
            self._queue = collections.deque(t for t in self._queue if t not in loops)
        for ticket in loops:
            self._end(ticket, cancelled=True)

    def cancel_all(self) -> None:
        with self._lock:
            for ticket in (*self._queue, *self._latest.values()):
                ticket.cancel.set()


class EngineWorker(QObject):
    """The GUI thread's door to the engine thread: :meth:`submit` jobs, get their results on a :class:`JobHandle`."""

    status = Signal(str)  # progress text while a slow step (loading the libraries, a model, a photo) runs

    def __init__(self, backend_loader: Callable[[], EngineBackend] = load_engine_backend) -> None:
        super().__init__()
        self._runner = _Runner(backend_loader)
        self._handles: dict[int, JobHandle] = {}  # alive until their job ended: dropped on the GUI thread
        self._ids = itertools.count(1)
        self._runner.status.connect(self.status)
        self._runner.jobEnded.connect(self._on_job_ended)
        self._runner.progressPosted.connect(self._on_progress)

    def submit(self, job: Job[object] | Callable[[JobContext], object], *, coalesce: str | None = None,
               title: str | None = None) -> JobHandle:
        """Queue ``job`` (a Job, or a callable taking the JobContext); call it on the GUI thread."""
        if not hasattr(job, "run"):
            job = CallableJob(job, title) if title else CallableJob(job)
        ticket = _Ticket(next(self._ids), job, coalesce)
        handle = JobHandle(ticket)
        self._handles[ticket.id] = handle
        replaced = self._runner.submit(ticket)
        if replaced is not None:
            self._handles.pop(replaced.id, None)  # it never started: it has nothing to say
        return handle

    def pending(self) -> tuple[int, bool]:
        """(queued jobs and loops, a latest-wins job waiting) — for tests and the benchmark."""
        return self._runner.pending()

    @property
    def steps_done(self) -> int:
        """Jobs and loop steps finished (read by tests and the benchmark)."""
        return self._runner.steps_done

    @property
    def state(self) -> EngineState:
        """The engine thread's state. For tests and benchmarks that instrument the engine; the GUI never calls it."""
        return self._runner.state

    @property
    def engine(self) -> Engine | None:
        return self._runner.state.engine

    @property
    def backend(self) -> EngineBackend | None:
        return self._runner.state.backend

    def _on_job_ended(self, ticket_id: int, result: object, failure: JobFailure | None) -> None:
        handle = self._handles.pop(ticket_id, None)
        if handle is None:
            return
        self._on_progress(ticket_id, handle)  # a last value still in the box comes before the end
        if failure is None:
            handle.returned.emit(result)
        else:
            handle.errored.emit(failure)
        handle.finished.emit()

    def _on_progress(self, ticket_id: int, handle: JobHandle | None = None) -> None:
        handle = handle or self._handles.get(ticket_id)
        if handle is not None:
            value = handle._ticket.progress.take()
            if value is not _EMPTY:
                handle.progress.emit(value)

    def _thread_stopped(self) -> None:
        """The engine thread has ended: release loops (camera, recording) and the engine, here, race-free."""
        self._runner.end_loops()
        self._runner.state.close_engine()


class WorkerThread:
    """Owns the engine QThread and the worker; ``stop()`` cancels every job and joins (quit + wait)."""

    def __init__(self, backend_loader: Callable[[], EngineBackend] = load_engine_backend) -> None:
        self.thread = QThread()
        self.thread.setObjectName("mmfa-engine")
        self.worker = EngineWorker(backend_loader)
        self.worker._runner.moveToThread(self.thread)
        self.thread.start()

    def stop(self, timeout_ms: int = 30_000) -> None:
        if self.thread.isRunning():
            self.worker._runner.cancel_all()  # an export in hand checks its flag and stops
            self.thread.quit()
            self.thread.wait(timeout_ms)
        if not self.thread.isRunning():
            self.worker._thread_stopped()
