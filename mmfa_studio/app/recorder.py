"""Recording the live webcam result to mp4 so that it plays at real speed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from mmfa_studio.engine import VideoExporter


class FrameWriter(Protocol):
    """What the recorder needs of a video writer (the engine's VideoExporter, once entered)."""

    frames_written: int

    def write(self, frame: np.ndarray) -> None: ...

    def cancel(self) -> None: ...

    def __exit__(self, *exc: object) -> bool: ...


class RealTimeRecorder:
    """Writes rendered frames so the recording plays at real speed.

    A real-time source (a camera, a paced file) skips frames while rendering lags behind its fps, so the last
    frame is repeated to fill the gap; an unpaced file delivers every frame, written once.
    """

    def __init__(self, writer: FrameWriter, path: str, fps: float, realtime: bool,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.writer, self.path, self.fps, self.realtime = writer, path, float(fps), realtime
        self._clock = clock
        self._t0 = clock()

    @classmethod
    def open(cls, exporter_type: type[VideoExporter], path: str, fps: float, realtime: bool) -> RealTimeRecorder:
        """Start writing ``path`` (raises, with nothing left behind, if it cannot be written)."""
        exporter = exporter_type(path, fps)
        exporter.__enter__()
        return cls(exporter, path, fps, realtime)

    def write(self, frame: np.ndarray) -> None:
        copies = 1
        if self.realtime:
            due = int((self._clock() - self._t0) * self.fps) + 1
            copies = max(0, due - self.writer.frames_written)
        for _ in range(copies):
            self.writer.write(frame)

    def close(self) -> None:
        """Finish the file (raises if it cannot be finished)."""
        self.writer.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the file: nothing is left behind. Never raises (it is called when already failing)."""
        with contextlib.suppress(Exception):  # the caller reports the failure that got here
            self.writer.cancel()
            self.writer.__exit__(None, None, None)
