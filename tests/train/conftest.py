"""Fixtures for the trainer tests: a short real clip (from ../shared/data), synthetic clips, prepared folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REAL_CLIP = "liveportrait__d0.mp4"  # a clean, centred talking-head clip


def read_clip(path: Path, size: int, frames: int, stride: int = 2) -> np.ndarray:
    """The first ``frames`` frames (every ``stride``-th) of a video, centre-cropped square, RGB uint8."""
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < frames:
        ok, frame = cap.read()
        if not ok:
            break
        if i % stride == 0:
            h, w = frame.shape[:2]
            s = min(h, w)
            crop = frame[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
            out.append(cv2.cvtColor(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    if not out:
        pytest.skip(f"could not decode {path}")
    return np.stack(out)


@pytest.fixture(scope="session")
def real_clip(shared_data) -> np.ndarray:
    """24 frames of a real talking head at 64 px (skipped where ../shared/data is absent)."""
    path = shared_data / "videos" / REAL_CLIP
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return read_clip(path, 64, 24)


def blob_video(frames: int = 12, size: int = 64, seed: int = 0) -> np.ndarray:
    """A synthetic clip: three coloured Gaussian blobs drifting over a grey background (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    start = rng.uniform(0.3, 0.7, size=(3, 2)) * size
    velocity = rng.uniform(-1, 1, size=(3, 2))
    video = []
    for t in range(frames):
        img = np.full((size, size, 3), 0.4, np.float32)
        for c in range(3):
            cx, cy = start[c] + velocity[c] * t
            img[..., c] += 0.5 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 10) ** 2))
        video.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(video)


@pytest.fixture()
def blob_store():
    from mmfa_studio.train.dataset import ArrayStore

    return ArrayStore({"blobs0": blob_video(12, seed=0), "blobs1": blob_video(10, seed=1)})


def write_prepared(root: Path, videos: dict[str, np.ndarray], poses: dict[str, np.ndarray] | None = None) -> Path:
    """Write clips in the prepared format (prepared.py's writer pieces, without running `prepare`)."""
    from mmfa_studio.train.prepared import CLIPS_DIR, FRAMES_SUFFIX, ClipInfo, encode_frame, write_index

    (root / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    clips, size = [], None
    for cid, video in videos.items():
        size = video.shape[1]
        blobs = [encode_frame(f, "jpg", 90) for f in video]
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        (root / CLIPS_DIR / f"{cid}{FRAMES_SUFFIX}").write_bytes(b"".join(blobs))
        pose = None if poses is None else poses.get(cid)
        clips.append(ClipInfo(id=cid, frames=len(video), fps=25.0, source=f"{cid}.mp4", pose=pose, offsets=offsets))
    write_index(root, size, clips, "jpg")
    return root


@pytest.fixture()
def prepared_blobs(tmp_path) -> Path:
    return write_prepared(tmp_path / "data", {"blobs0": blob_video(12, seed=0), "blobs1": blob_video(10, seed=1)})


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training tests run single-threaded: on a shared 2-core machine two OpenMP threads that keep being
    preempted spin and wait for each other (a step measured 10x slower); one thread degrades gracefully."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
