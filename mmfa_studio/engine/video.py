"""Video files: probe (fps, size, audio), and the atomic H.264 exporter.

Encoding runs imageio-ffmpeg's bundled ffmpeg (never a system one) directly through a pipe rather than
``imageio_ffmpeg.write_frames``: that generator ignores ffmpeg's exit status, so a failed encode would look
like a success, and it formats nothing we cannot pass ourselves. Frames are fed as raw RGB; the frame rate is
given to ffmpeg as an exact fraction (30000/1001 stays 29.97002997…, not 29.97).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
from tqdm import tqdm

from mmfa_studio.atomic import atomic_path
from mmfa_studio.runtime import ffmpeg_threads

from .errors import ExportCancelled, VideoError

# OpenCV's ffmpeg prints its decoder's complaints ("partial file", "error while decoding MB") straight to
# stderr; set before any capture opens. A short decode is reported in our own words (frames.shortfall_note).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
# An export stops, and says so, once its folder has less than this free: at the start, before a frame is
# rendered, and every CHECK_SPACE_EVERY frames while writing (not only at the end, after the whole clip).
MIN_FREE_BYTES = 16 * 2**20
CHECK_SPACE_EVERY = 25


def ffmpeg_exe() -> str:
    """imageio-ffmpeg's bundled ffmpeg (with libx264)."""
    import imageio_ffmpeg  # imported on use: rendering alone does not need it

    return imageio_ffmpeg.get_ffmpeg_exe()


def exact_fps(fps: float | Fraction) -> Fraction:
    """A container's float frame rate as the fraction it stands for (29.97002997 → 30000/1001, 25.0 → 25)."""
    if isinstance(fps, Fraction):
        return fps
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate must be positive, not {fps}")
    ntsc = Fraction(fps).limit_denominator(1001)  # NTSC rates are n·1000/1001
    if abs(float(ntsc) - fps) <= 1e-6 * fps:
        return ntsc
    return Fraction(fps).limit_denominator(100_000)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: Fraction  # exact container rate, e.g. Fraction(30000, 1001)
    width: int
    height: int
    frame_count: int  # as the container reports it (may be off by one; decoding is the truth)
    has_audio: bool

    @property
    def duration(self) -> float:
        return self.frame_count / float(self.fps)


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, size and audio presence of a video file; ``VideoError`` if it is unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path} is not a readable video")
        fps = cap.get(cv2.CAP_PROP_FPS)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, _ = cap.read()
        if not ok:
            raise VideoError(f"{path} has no video frames")
    finally:
        cap.release()
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"{path} has no usable frame rate")
    return VideoInfo(path=path, fps=exact_fps(fps), width=width, height=height, frame_count=max(count, 1),
                     has_audio=has_audio_stream(path))


def has_audio_stream(path: str | Path) -> bool:
    """Whether ffmpeg sees an audio stream in the file."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True, errors="replace", timeout=60)
    return re.search(r"Stream #\d+:\d+.*: Audio:", result.stderr) is not None


class VideoExporter:
    """Write RGB frames to an H.264 (yuv420p) video, atomically.

        with VideoExporter("out.mp4", fps=Fraction(30000, 1001), audio_from="driving.mp4") as video:
            for frame in frames:
                video.write(frame)          # H×W×3 uint8 RGB, every frame the same size

    * Any frame size: odd widths/heights (which yuv420p cannot hold) are padded by one edge row/column,
      nothing is rescaled.
    * ``audio_from``: a video (or audio file) whose first audio stream is muxed in as AAC, cut or padded with
      silence to the video's length (no frame is ever dropped); a file without audio gives a silent video.
    * The file appears only when the ``with`` block ends normally. An exception, a KeyboardInterrupt or
      :meth:`cancel` (from any thread) kills ffmpeg and leaves no file (and no temporary file) behind; after a
      cancel, :meth:`write` raises :class:`ExportCancelled`, which the ``with`` block swallows.
    * ``progress``: show a tqdm bar (``total`` frames if known).
    """

    def __init__(self, path: str | Path, fps: float | Fraction, audio_from: str | Path | None = None, *,
                 crf: int = 18, preset: str = "medium", progress: bool = False, total: int | None = None,
                 description: str = "export"):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise VideoError(f"{self.path}: the output must end in {', '.join(VIDEO_SUFFIXES)}")
        self.fps = exact_fps(fps)
        if not 0 < self.fps <= 240:
            raise VideoError(f"frame rate {float(self.fps):g} is out of range (0, 240]")
        self.audio_from = Path(audio_from) if audio_from is not None else None
        if self.audio_from is not None and not self.audio_from.is_file():
            raise VideoError(f"audio source {self.audio_from} does not exist")
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._progress = tqdm(total=total, desc=description, unit="frame", disable=not progress, leave=False)
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    # -- context ----------------------------------------------------------------------------------------
    def __enter__(self) -> VideoExporter:
        stack = contextlib.ExitStack()
        try:
            self._tmp = stack.enter_context(atomic_path(self.path))
        except OSError as exc:
            raise VideoError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._stack = stack
        try:
            self._check_space()
        except BaseException as error:  # handed to atomic_path, which then removes the file (close() would keep it)
            stack.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _check_space(self) -> None:
        """``VideoError`` when the output's folder is (nearly) full: noticed now, not after rendering it all."""
        try:
            free = shutil.disk_usage(self._tmp.parent if self._tmp else self.path.parent).free
        except OSError:
            return  # cannot tell: ffmpeg's own write errors still stop the export
        if free < MIN_FREE_BYTES:
            raise VideoError(f"cannot write {self.path}: the disk is full ({free / 2**20:.1f} MB free); free some "
                             "space or write elsewhere")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        assert self._stack is not None, "VideoExporter is used as a context manager"
        self._progress.close()
        try:
            return self._exit(exc_type, exc, tb)
        finally:  # every way out: no pipe or log file left open (the app exports many times per session)
            self._kill()
            if self._log is not None:
                self._log.close()

    def _exit(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        assert self._stack is not None
        if exc_type is None and self._cancelled.is_set():
            exc_type, exc = ExportCancelled, ExportCancelled(f"export of {self.path} cancelled")
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:
                self._kill()
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
            self._stack.__exit__(None, None, None)  # renames the finished temp file onto the target
            return False
        self._kill()
        self._stack.__exit__(exc_type, exc, tb)  # removes the temp file, leaves the target untouched
        return exc_type is ExportCancelled or isinstance(exc, ExportCancelled)

    # -- writing ----------------------------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame (every frame must have the first one's size)."""
        if self._cancelled.is_set():
            raise ExportCancelled(f"export of {self.path} cancelled")
        if self._tmp is None:
            raise RuntimeError("use VideoExporter in a with block")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be H×W×3 uint8 RGB, got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        if self.size is None:
            self.size = (w, h)
            self._start(w + w % 2, h + h % 2)
        elif self.frames_written % CHECK_SPACE_EVERY == 0:
            self._check_space()
            if self._process is not None and self._process.poll() is not None:  # e.g. ENOSPC: stop at once
                raise VideoError(f"ffmpeg stopped while writing {self.path}: {self._last_log_line()}")
        elif self.size != (w, h):
            raise ValueError(f"frame {self.frames_written} is {w}×{h}, the video is {self.size[0]}×{self.size[1]}")
        if w % 2 or h % 2:  # yuv420p needs even sizes: repeat the last row/column
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError, ValueError):
            if self._cancelled.is_set():
                raise ExportCancelled(f"export of {self.path} cancelled") from None
            raise VideoError(f"ffmpeg stopped while writing {self.path}: {self._last_log_line()}") from None
        self.frames_written += 1
        self._progress.update(1)

    def cancel(self) -> None:
        """Stop the export; no file will be written. Safe to call from another thread."""
        self._cancelled.set()
        self._kill()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- ffmpeg -----------------------------------------------------------------------------------------
    def _start(self, width: int, height: int) -> None:
        cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(self.fps), "-i", "-"]
        if self.audio_from is not None:
            # apad + -shortest: the video's length rules — a short audio track is padded with silence, a long
            # one is cut; never a frame lost.
            cmd += ["-i", str(self.audio_from), "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "aac", "-b:a", "160k",
                    "-af", "apad", "-shortest"]
        cmd += ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
                "-threads", str(ffmpeg_threads()), "-movflags", "+faststart", str(self._tmp)]
        # ffmpeg's messages go to a file: a pipe nobody reads could fill up and stall it.
        self._log = tempfile.TemporaryFile(mode="w+", errors="replace")
        with self._lock:
            if self._cancelled.is_set():
                raise ExportCancelled(f"export of {self.path} cancelled")
            self._process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                             start_new_session=True)  # Ctrl-C reaches us, not ffmpeg mid-write

    def _finish(self) -> None:
        if self._process is None:
            raise VideoError(f"no frames to write to {self.path}")
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
        except OSError:
            pass
        code = self._process.wait()
        if self._cancelled.is_set():
            raise ExportCancelled(f"export of {self.path} cancelled")
        if code != 0:
            raise VideoError(f"ffmpeg failed to write {self.path} (exit {code}): {self._last_log_line()}")
        if self._log is not None:
            self._log.close()

    def _kill(self) -> None:
        with self._lock:
            process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(Exception):  # also when ffmpeg died by itself: our end of the pipe stays open
                process.stdin.close()  # type: ignore[union-attr]
            process.wait()

    def _last_log_line(self) -> str:
        if self._log is None:
            return "no output"
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return lines[-1] if lines else "no message"


__all__ = ["VideoExporter", "VideoInfo", "probe_video", "has_audio_stream", "exact_fps", "ffmpeg_exe", "VIDEO_SUFFIXES"]
