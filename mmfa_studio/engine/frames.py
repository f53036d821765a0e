"""Frame sources for reenactment and the live view: camera | video file | image folder | synthetic.

A video file can be paced to real time (late frames are dropped, as a camera would) and looped, which makes it a
stand-in for a webcam: everything above the camera runs the same from a file (tests, machines without one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.assets import SAMPLE_PORTRAIT

from .errors import VideoError
from .video import exact_fps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class FrameSource:
    """Iterate RGB uint8 frames (H×W×3). Use as a context manager or call :meth:`close`.

    ``pace``: yield frames at ``fps`` in real time, dropping frames when the consumer is late (files only; a
    camera paces itself). ``loop``: start again at the end (files only). ``frame_count`` is ``None`` when
    unknown or endless.
    """

    live = False  # a camera: paced by the device, cannot loop

    def __init__(self, name: str, fps: Fraction, pace: bool = False, loop: bool = False):
        self.name = name
        self.fps_fraction = fps
        self.pace = pace and not self.live
        self.loop = loop and not self.live
        self.frame_count: int | None = None
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame
        self._closed = False

    @property
    def fps(self) -> float:
        return float(self.fps_fraction)

    # Subclasses: read the next frame (None at the end), skip one without decoding, go back to the start.
    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _skip(self) -> bool:
        return self._read() is not None

    def _rewind(self) -> None:
        raise NotImplementedError

    def _next(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        """(got one, frame): handles the end of the source and looping."""
        for attempt in range(2):
            if decode:
                frame = self._read()
                if frame is not None:
                    return True, frame
            elif self._skip():
                return True, None
            if not self.loop or attempt:
                return False, None
            self._rewind()
        return False, None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise VideoError(f"{self.name} is closed")
        start, index = time.monotonic(), 0  # index: position on the real-time timeline
        while not self._closed:
            if self.pace:
                due_index = int((time.monotonic() - start) * self.fps)
                while index < due_index:  # late: drop frames as a camera would
                    ok, _ = self._next(decode=False)
                    if not ok:
                        return
                    index += 1
                wait = start + index / self.fps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            ok, frame = self._next(decode=True)
            if not ok or frame is None:
                return
            index += 1
            yield frame

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps:g})"


class _CaptureSource(FrameSource):
    """cv2.VideoCapture: a camera index or a video file."""

    def __init__(self, name: str, capture: cv2.VideoCapture, fps: Fraction, pace: bool, loop: bool):
        super().__init__(name, fps, pace, loop)
        self._cap = capture
        self._pending: np.ndarray | None = None
        self.decoded = 0  # frames decoded so far (first pass)
        self.ended = False  # the decoder reached the end (or the point where the file breaks off)

    def _read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        ok, bgr = self._cap.read()
        if ok and bgr is not None:
            self.decoded += 1
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.ended = True
        return None

    def _skip(self) -> bool:
        if self._pending is not None:
            self._pending = None
            return True
        return bool(self._cap.grab())

    def _rewind(self) -> None:
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def shortfall_note(self) -> str | None:
        """One line when the file decoded to an end well before the frame count its container declares."""
        if not self.ended or self.loop:
            return None
        return shortfall_note(self.name, self.decoded, self.frame_count)

    def _prime(self) -> None:
        """Decode the first frame now, so an empty or broken source fails at open time."""
        frame = self._read()
        if frame is None:
            self._cap.release()
            raise VideoError(f"{self.name} has no video frames" if not self.live
                             else f"camera {self.name} gives no frames")
        self._pending = frame
        self.size = (frame.shape[1], frame.shape[0])

    def close(self) -> None:
        super().close()
        self._cap.release()


class CameraSource(_CaptureSource):
    live = True

    def __init__(self, index: int):
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"camera {index} cannot be opened (no such camera, or it is in use)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        super().__init__(str(index), cap, exact_fps(fps if fps and 1 <= fps <= 240 else 30.0), False, False)
        self._prime()


class VideoFileSource(_CaptureSource):
    def __init__(self, path: Path, pace: bool = False, loop: bool = False):
        if not path.is_file():
            raise VideoError(f"video {path} does not exist")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"{path} is not a readable video")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or not math.isfinite(fps) or fps <= 0:
            cap.release()
            raise VideoError(f"{path} has no usable frame rate")
        super().__init__(str(path), cap, exact_fps(fps), pace, loop)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not self.loop else None
        self.path = path
        self._prime()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, at ``fps``."""

    def __init__(self, folder: Path, fps: float = 25.0, pace: bool = False, loop: bool = False):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise VideoError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        super().__init__(str(folder), exact_fps(fps), pace, loop)
        self.files = files
        self.frame_count = None if self.loop else len(files)
        self._index = 0
        self.size = self._load(files[0]).shape[1::-1]

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        from mmfa_studio.face.image import ImageError, check_pixel_count

        try:  # the photo limit applies to every frame of a folder too (a bomb among them)
            check_pixel_count(path.read_bytes(), path)
        except (ImageError, OSError) as exc:
            raise VideoError(str(exc) if isinstance(exc, ImageError) else f"cannot read {path}") from None
        # IMREAD_COLOR applies EXIF orientation and converts gray/16-bit/alpha images to 8-bit colour.
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoError(f"{path} is not a readable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read(self) -> np.ndarray | None:
        if self._index >= len(self.files):
            return None
        self._index += 1
        return self._load(self.files[self._index - 1])

    def _skip(self) -> bool:
        if self._index >= len(self.files):
            return False
        self._index += 1
        return True

    def _rewind(self) -> None:
        self._index = 0


class SyntheticSource(FrameSource):
    """The sample portrait moving smoothly (roll, sway, zoom): a face to track with no camera or file.

    Deterministic: frame i depends on i only. ``duration`` seconds per cycle (then it ends, or loops).
    """

    def __init__(self, fps: float = 30.0, duration: float = 10.0, pace: bool = False, loop: bool = False,
                 image: np.ndarray | None = None):
        super().__init__("synthetic", exact_fps(fps), pace, loop)
        if image is None:
            bgr = cv2.imread(str(SAMPLE_PORTRAIT), cv2.IMREAD_COLOR)
            if bgr is None:
                raise VideoError(f"the sample portrait {SAMPLE_PORTRAIT} is missing")
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.image = image
        self.frame_count = None if self.loop else max(1, round(duration * self.fps))
        self._length = max(1, round(duration * self.fps))
        self._index = 0
        self.size = (image.shape[1], image.shape[0])

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        h, w = self.image.shape[:2]
        angle = 10.0 * math.sin(2 * math.pi * t / 4.0)
        scale = 1.0 + 0.06 * math.sin(2 * math.pi * t / 5.0)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        matrix[0, 2] += 0.04 * w * math.sin(2 * math.pi * t / 3.0)
        matrix[1, 2] += 0.02 * h * math.sin(2 * math.pi * t / 3.5)
        return cv2.warpAffine(self.image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def _read(self) -> np.ndarray | None:
        if self._index >= self._length:
            return None
        self._index += 1
        return self.frame(self._index - 1)

    def _skip(self) -> bool:
        if self._index >= self._length:
            return False
        self._index += 1
        return True

    def _rewind(self) -> None:
        self._index = 0


def shortfall_note(name: str, decoded: int, declared: int | None) -> str | None:
    """'X decoded only 72 of its 150 frames …' when a video ends early (truncated or corrupt), else None.
    Containers' counts can be off by one or two, so a shortfall of up to 2 frames (or 2 %) is not reported."""
    if not declared or declared - decoded <= max(2, declared // 50):
        return None
    return (f"{name} decoded only {decoded} of its {declared} frames (the file is truncated or corrupt): the "
            f"output is {decoded} frames long")


def open_frame_source(spec: str | int | Path, *, pace: bool = False, loop: bool = False,
                      fps: float | None = None) -> FrameSource:
    """A frame source from a camera index (``0`` or ``"0"``), a video file, an image folder or ``"synthetic"``.

    ``fps`` sets the rate of image folders and the synthetic source (default 25 and 30); videos keep their own.
    Raises :class:`VideoError` with a one-line message when the source cannot be opened or has no frames.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec))
    if isinstance(spec, str) and spec.lower() == "synthetic":
        return SyntheticSource(fps=fps or 30.0, pace=pace, loop=loop)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps or 25.0, pace=pace, loop=loop)
    if not path.exists():
        raise VideoError(f"{path}: no such video file, image folder or camera")
    return VideoFileSource(path, pace=pace, loop=loop)


__all__ = ["FrameSource", "CameraSource", "VideoFileSource", "ImageFolderSource", "SyntheticSource",
           "open_frame_source", "shortfall_note", "SAMPLE_PORTRAIT", "IMAGE_SUFFIXES"]
