"""A fake ``pyvirtualcam``: cameras that record what they are sent and when (nothing on this machine has a
v4l2loopback device or OBS)."""

from __future__ import annotations

import time
import types
from typing import ClassVar

import numpy as np


class RecordingCamera:
    """pyvirtualcam.Camera's interface: width, height, fps, device, send(), close()."""

    opened: ClassVar[list[RecordingCamera]] = []

    def __init__(self, width: int, height: int, fps: float, *, backend: str | None = None, **_: object):
        self.width, self.height, self.fps, self.backend = width, height, fps, backend
        self.device = "/dev/video-fake"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False
        RecordingCamera.opened.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert not self.closed
        self.frames.append(frame.copy())
        self.times.append(time.monotonic())

    def close(self) -> None:
        self.closed = True


def fake_pyvirtualcam(camera: type = RecordingCamera) -> types.ModuleType:
    module = types.ModuleType("pyvirtualcam")
    module.Camera = camera
    RecordingCamera.opened = []
    return module
