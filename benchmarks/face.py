"""Face-tracking benchmark: detection rate, crop jitter, tracking speed (reports figures, asserts nothing).

    python -m benchmarks.face [--data ../shared/data] [--clips NAME ...] [--frames 300] [--save]

* detection rate over every photo in DATA/portraits (misses listed);
* crop-centre jitter in 256-px crop pixels on still-camera talking clips, with the online One-Euro smoothing
  off and on: RMS of the centre minus its centred 9-frame moving average (the shake, not the head's motion),
  and the RMS frame-to-frame step;
* tracking speed on 640×480 frames: detect (mesh + pose) + smoothed crop, video mode.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.face import CropSmoother, create_tracker, crop_at, crop_box, load_image
from mmfa_studio.face.image import ImageError

from .common import SHARED_DATA, emit, parse_args, say

DEFAULT_CLIPS = ("dreamtalk__W009_front_neutral_level1_001.mp4", "liveportrait__d6.mp4", "edtalk__pose_source1.mp4")


def _read(path: Path, limit: int) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps


def detection_rate(folder: Path) -> dict[str, object]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp"))
    tracker = create_tracker(video=False)
    misses, unreadable, seconds = [], [], 0.0
    for p in paths:
        try:
            image = load_image(p)
        except ImageError:
            unreadable.append(p.name)
            continue
        t0 = time.perf_counter()
        faces = tracker.detect(image)
        seconds += time.perf_counter() - t0
        if not faces:
            misses.append(p.name)
    tracker.close()
    n = len(paths) - len(unreadable)
    rate = 100.0 * (n - len(misses)) / max(n, 1)
    say(f"detection: {n - len(misses)}/{n} portraits = {rate:.1f} % (target ≥ 98 %), "
        f"{1000 * seconds / max(n, 1):.0f} ms per photo")
    return {"portraits": n, "detected_percent": rate, "ms_per_photo": 1000 * seconds / max(n, 1), "misses": misses,
            "unreadable": unreadable}


def _jitter(boxes: np.ndarray) -> tuple[float, float]:
    """(RMS shake around a centred 9-frame moving average, RMS frame-to-frame step), in 256-px crop pixels."""
    centre = boxes[:, :2] * (256.0 / boxes[:, 2:3])
    kernel = np.ones(9) / 9
    smooth = np.stack([np.convolve(centre[:, i], kernel, mode="valid") for i in range(2)], axis=1)
    shake = centre[4:-4] - smooth
    step = np.diff(centre, axis=0)
    return float(np.sqrt((shake ** 2).sum(axis=1).mean())), float(np.sqrt((step ** 2).sum(axis=1).mean()))


def jitter(path: Path, limit: int) -> dict[str, object]:
    frames, fps = _read(path, limit)
    tracker = create_tracker(video=True, max_faces=1)
    raw = []
    for f in frames:
        faces = tracker.detect(f)
        if faces:
            raw.append(crop_box(faces[0]))
    tracker.close()
    if len(raw) < 20:
        say(f"jitter {path.name}: face found in only {len(raw)} frames")
        return {"clip": path.name, "frames_with_face": len(raw)}
    raw = np.array(raw)
    smoother = CropSmoother()
    smooth = np.array([smoother(b, i / fps) for i, b in enumerate(raw)])
    (r_shake, r_step), (s_shake, s_step) = _jitter(raw), _jitter(smooth)
    say(f"jitter {path.name} ({len(raw)} frames): shake RMS {r_shake:.2f} px → {s_shake:.2f} px smoothed "
        f"(target ≤ 1), step RMS {r_step:.2f} → {s_step:.2f} px")
    return {"clip": path.name, "frames_with_face": len(raw), "shake_rms_px": r_shake, "shake_rms_px_smoothed": s_shake,
            "step_rms_px": r_step, "step_rms_px_smoothed": s_step}


def speed(path: Path, limit: int) -> dict[str, float]:
    frames, fps = _read(path, limit)
    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in frames]
    fps_by_kind = {}
    for with_pose in (True, False):
        tracker = create_tracker(video=True, max_faces=1, with_pose=with_pose)
        smoother = CropSmoother()
        tracker.detect(frames[0])  # warm-up
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            faces = tracker.detect(f)
            if faces:
                crop_at(f, smoother(crop_box(faces[0]), i / fps), 256)
        dt = time.perf_counter() - t0
        tracker.close()
        label = "mesh + pose + crop" if with_pose else "mesh + crop (no pose)"
        say(f"tracking 640×480 ({label}): {len(frames) / dt:.1f} fps (target ≥ 30), "
            f"{1000 * dt / len(frames):.1f} ms/frame")
        fps_by_kind["tracking_fps" if with_pose else "tracking_fps_no_pose"] = len(frames) / dt
    return fps_by_kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.face", description="face-tracking benchmark")
    parser.add_argument("--data", default=str(SHARED_DATA))
    parser.add_argument("--clips", nargs="*", default=list(DEFAULT_CLIPS))
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (default 300)")
    args = parse_args(parser, argv)
    data = Path(args.data)
    if not (data / "portraits").is_dir():
        say(f"benchmark data not found at {data} (needs portraits/ and videos/)")
        return 2
    results = {"detection": detection_rate(data / "portraits"),
               "jitter": [jitter(data / "videos" / name, args.frames) for name in args.clips],
               **speed(data / "videos" / args.clips[0], args.frames)}
    emit("face", results, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
