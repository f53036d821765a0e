"""Test clips made on the fly with imageio-ffmpeg's own ffmpeg (nothing from ../shared/data)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

NTSC = "30000/1001"


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args], check=True,
                   stdin=subprocess.DEVNULL)


def face_clip(path: Path, portrait: Path, frames: int = 12, rate: str = NTSC, audio: bool = True,
              size: int = 192) -> Path:
    """The sample portrait, slowly zooming, ``frames`` frames at ``rate`` (+ a 440 Hz tone)."""
    args = ["-loop", "1", "-framerate", rate, "-i", str(portrait)]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]
    args += ["-vf", f"scale={size}:{size},zoompan=z='1+0.004*on':d=1:s={size}x{size}:fps={rate}",
             "-frames:v", str(frames), "-r", rate, "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    ffmpeg(*args, str(path))
    return path


def faceless_clip(path: Path, frames: int = 6) -> Path:
    """A test pattern: frames, but no face."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x96:rate=25", "-frames:v", str(frames), "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))
    return path


def count_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n
