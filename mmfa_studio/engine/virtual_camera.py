"""Output to a virtual camera, so a video call or a stream can show the animated portrait.

Through ``pyvirtualcam`` (the optional extra ``mmfa-studio[virtual-camera]``): v4l2loopback on Linux, the OBS
virtual camera on Windows and macOS. Where none exists (no extra, no loopback device, no OBS), opening one
raises :class:`VirtualCameraUnavailable` with a one-line reason for the CLI or the webcam panel to show.

    with open_virtual_camera(640, 480, 30.0) as camera:
        for frame in frames:
            camera.send(frame)          # RGB uint8, any size: fitted to the camera's

The sink paces nothing: the caller sends at the driver's rate (a camera or a paced file already is).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .errors import EngineError

if TYPE_CHECKING:
    from typing_extensions import Self

INSTALL_HINT = "pip install 'mmfa-studio[virtual-camera]'"


class VirtualCameraUnavailable(EngineError):
    """No virtual camera can be opened (or it went away); ``str()`` is the one-line reason."""


class CameraBackend(Protocol):
    """What the sink needs of a camera: ``pyvirtualcam.Camera``, or a fake one in tests."""

    width: int
    height: int
    fps: float

    def send(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


# backend: None (pyvirtualcam's default for this system), a pyvirtualcam backend name ("v4l2loopback", "obs",
# "unitycapture"), or a factory (width, height, fps) -> camera, e.g. a fake that records frames.
Backend = str | Callable[[int, int, float], CameraBackend] | None


@dataclass
class VirtualCameraSink:
    """An open virtual camera. :meth:`send` fits each frame to the camera's size (scaled to fit, letterboxed
    in black); the size and fps are those the camera took, which may differ from the ones asked for."""

    camera: CameraBackend
    device: str = ""
    frames_sent: int = field(default=0, init=False)
    _closed: bool = field(default=False, init=False, repr=False)

    @property
    def width(self) -> int:
        return int(self.camera.width)

    @property
    def height(self) -> int:
        return int(self.camera.height)

    @property
    def fps(self) -> float:
        return float(self.camera.fps)

    def send(self, frame_rgb_uint8: np.ndarray) -> None:
        if self._closed:
            raise VirtualCameraUnavailable("the virtual camera is closed")
        frame = np.asarray(frame_rgb_uint8)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 RGB frame, got {frame.dtype} {frame.shape}")
        try:
            self.camera.send(fit_frame(frame, self.width, self.height))
        except (RuntimeError, OSError) as exc:  # e.g. the loopback device was removed
            raise VirtualCameraUnavailable(f"the virtual camera stopped: {_one_line(exc)}") from None
        self.frames_sent += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.camera.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` scaled to fit width×height (aspect kept) and centred on black; itself when it already fits."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(frame)
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    canvas[y:y + nh, x:x + nw] = resized
    return canvas


def open_virtual_camera(width: int, height: int, fps: float, *, backend: Backend = None) -> VirtualCameraSink:
    """Open a virtual camera of width×height at ``fps``; :class:`VirtualCameraUnavailable` where there is none."""
    if width < 1 or height < 1 or not fps > 0:
        raise ValueError(f"a virtual camera needs a positive size and fps, not {width}×{height} at {fps:g}")
    if callable(backend):
        return VirtualCameraSink(backend(int(width), int(height), float(fps)), device="fake")
    try:
        import pyvirtualcam
    except ImportError:
        raise VirtualCameraUnavailable(f"no virtual camera: pyvirtualcam is not installed ({INSTALL_HINT})") from None
    previous_hook = sys.unraisablehook
    # A Camera whose opening failed complains from __del__ (pyvirtualcam 0.15: AttributeError '_backend');
    # the failure itself is reported once, below, so that noise is kept out of the one-line message.
    sys.unraisablehook = _ignore_half_opened_camera(previous_hook)
    try:
        camera = pyvirtualcam.Camera(int(width), int(height), float(fps), backend=backend)
    except KeyError:  # pyvirtualcam's lookup of a backend name it does not have on this system
        reason = f"no virtual camera: no {backend!r} backend on {sys.platform}"
    except (RuntimeError, OSError, ValueError) as exc:
        reason = f"no virtual camera: {_one_line(exc)}"
    else:
        reason = ""
    finally:
        sys.unraisablehook = previous_hook
    if reason:
        raise VirtualCameraUnavailable(reason)
    return VirtualCameraSink(camera, device=str(getattr(camera, "device", "")))


def _ignore_half_opened_camera(previous: Callable) -> Callable:
    def hook(unraisable) -> None:
        qualname = getattr(unraisable.object, "__qualname__", "")
        if not (unraisable.exc_type is AttributeError and qualname == "Camera.__del__"):
            previous(unraisable)
    return hook


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


__all__ = [
    "INSTALL_HINT",
    "CameraBackend",
    "VirtualCameraSink",
    "VirtualCameraUnavailable",
    "fit_frame",
    "open_virtual_camera",
]
