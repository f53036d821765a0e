"""The process's thread pools, sized in one place, and a description of the machine a figure was measured on.

One frame's work passes through several pools: OpenCV (decoding, crop warps), MediaPipe (the face tracker),
torch (the render) and, in a child process, ffmpeg (encoding). Left alone, each sizes itself to every core of
the machine, so on a small or busy CPU they oversubscribe it; OpenMP threads that wait for a preempted partner
then spin, and a frame gets many times slower than its share of the CPU would make it. The policy, from the
cores this process may run on (``os.sched_getaffinity``, not the machine's count):

* torch intra-op: every available core (the render is the frame's big parallel job); its inter-op pool: 1
  thread (nothing here uses inter-op parallelism; a second pool could only compete);
* OpenCV: 1 thread (its operations here are small warps and resizes, cheaper serial than handed to a pool);
* ffmpeg's encoder: a quarter of the cores, at least 1 (it runs beside the render, not instead of it);
* MediaPipe: not controllable from its Python ``solutions`` API; its graphs run inside the tracker's calls,
  which alternate with the render rather than overlap it.

Beside another busy process no fixed torch figure suits: :class:`ThreadTuner` picks it per frame stream, by
measured time (reenactment uses it).

``MMFA_STUDIO_THREADS`` (or ``OMP_NUM_THREADS``) overrides the torch figure. :func:`configure_threads` is called
once by each entry point (the CLI, the app) before the heavy libraries load, so environment variables reach them
at start-up; libraries already loaded are set through their own calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

THREADS_ENV = "MMFA_STUDIO_THREADS"


@dataclass(frozen=True)
class ThreadPlan:
    cores: int  # cores this process may run on
    torch_threads: int
    torch_interop_threads: int
    opencv_threads: int
    ffmpeg_threads: int


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def plan_threads(cores: int | None = None) -> ThreadPlan:
    cores = available_cores() if cores is None else max(1, cores)
    asked = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    torch_threads = max(1, int(asked)) if asked and asked.isdigit() else cores
    return ThreadPlan(cores=cores, torch_threads=torch_threads, torch_interop_threads=1, opencv_threads=1,
                      ffmpeg_threads=max(1, cores // 4))


_applied: ThreadPlan | None = None


def configure_threads(plan: ThreadPlan | None = None) -> ThreadPlan:
    """Size every pool by ``plan`` (default :func:`plan_threads`); the first call in a process wins."""
    global _applied
    if _applied is not None:
        return _applied
    plan = plan or plan_threads()
    # Read by the libraries when they load (libgomp, OpenCV); a user's own setting is kept.
    os.environ.setdefault("OMP_NUM_THREADS", str(plan.torch_threads))
    os.environ.setdefault("OPENCV_FOR_THREADS_NUM", str(plan.opencv_threads))
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(plan.torch_threads)
        with contextlib.suppress(RuntimeError):  # settable only until the inter-op pool first runs
            torch.set_num_interop_threads(plan.torch_interop_threads)
    if "cv2" in sys.modules:
        import cv2

        cv2.setNumThreads(plan.opencv_threads)
    _applied = plan
    return plan


class ThreadTuner:
    """Chooses among a few thread counts online, by the measured time per frame: each candidate runs one window
    of frames in turn, the fastest is kept, and every ``hold`` windows the others are timed again (the load
    changes). ``apply`` sets a count; :meth:`record` takes each frame's seconds; :meth:`restore` sets the first
    candidate back.

    Why: on a 2-core machine beside one process spinning on a core, reenactment with torch's 2 OpenMP threads
    fell from 8.9 to 3.0 fps (34 %; the thread on the shared core holds up every parallel region), while 1 thread
    kept 5.7 fps; alone, 2 threads are 1.5× faster than 1. Neither fixed count suits both machines.

    A window counts by its median frame: in the app's webcam loop a few frames held up by something else (the GUI
    thread, a garbage collection) made a window of the faster count look slower by their mean, and 1 thread was
    kept for 24 of 46 windows (14.9 fps, against 19.1 with 2 threads fixed)."""

    def __init__(self, candidates: Sequence[int], apply: Callable[[int], None], window: int = 10, hold: int = 12):
        self.candidates = tuple(dict.fromkeys(max(1, int(c)) for c in candidates))
        self._apply, self.window, self.hold = apply, max(1, window), max(1, hold)
        self.seconds_per_frame: dict[int, float] = {}  # each candidate's median over its latest window
        self._to_time = list(self.candidates[1:])
        self.current = self.candidates[0]
        self._times: list[float] = []
        self._held = 0

    @property
    def active(self) -> bool:
        return len(self.candidates) > 1

    def record(self, seconds: float) -> None:
        if not self.active:
            return
        self._times.append(seconds)
        if len(self._times) < self.window:
            return
        self.seconds_per_frame[self.current] = statistics.median(self._times)
        self._times.clear()
        best = min(self.seconds_per_frame, key=self.seconds_per_frame.__getitem__)
        if not self._to_time:
            self._held += 1
            if self._held >= self.hold:  # time the others again
                self._held = 0
                self._to_time = [c for c in self.candidates if c != best]
        self._set(self._to_time.pop(0) if self._to_time else best)

    def restore(self) -> None:
        self._set(self.candidates[0])

    def _set(self, count: int) -> None:
        if count != self.current:
            self.current = count
            self._apply(count)


def frame_thread_tuner() -> ThreadTuner:
    """A :class:`ThreadTuner` of torch's intra-op threads for a stream of frames: its present count and half of
    it; inactive (one candidate) where that is 1 thread or the user set the count (``MMFA_STUDIO_THREADS``)."""
    import torch

    now = torch.get_num_threads()
    candidates = [now] if os.environ.get(THREADS_ENV) else [now, max(1, now // 2)]
    return ThreadTuner(candidates, torch.set_num_threads)


def ffmpeg_threads() -> int:
    """``-threads`` for the video encoder (engine/video.py)."""
    return (_applied or plan_threads()).ffmpeg_threads


def _git_commit() -> str | None:
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():  # an installed wheel: no commit to name
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if out.returncode == 0:
            return out.stdout.strip() + ("+changes" if dirty else "")
    return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, object]:
    """What a measurement depends on: the header of every benchmark's JSON (and of ``mmfa-studio bench --json``)."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": _cpu_model(),
        "cores_available": available_cores(),
        "cores_total": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": {"1min": round(load[0], 2), "5min": round(load[1], 2), "15min": round(load[2], 2)},
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_plan": dataclasses.asdict(_applied or plan_threads()),
        "thread_plan_applied": _applied is not None,
    }
