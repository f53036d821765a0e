"""Fixtures for the face tests: real portraits/clips from ../shared/data (skipped when absent), one tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmfa_studio.face import create_tracker, load_image

# Portraits with one clear, large face (checked by eye): used for pose-sign and crop tests.
CLEAR_PORTRAITS = ["avatarify-python__avatars-obama.jpg", "avatarify-python__einstein.jpg",
                   "avatarify-python__jobs.jpg", "avatarify-python__potter.jpg", "avatarify-python__eminem.jpg"]
TALKING_CLIP = "dreamtalk__W009_front_neutral_level1_001.mp4"  # still camera, one talking face


@pytest.fixture(scope="session")
def portraits_dir(shared_data: Path) -> Path:
    folder = shared_data / "portraits"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


@pytest.fixture(scope="session")
def photo_tracker():
    tracker = create_tracker(video=False, max_faces=4)
    yield tracker
    tracker.close()


@pytest.fixture(scope="session")
def clear_portraits(portraits_dir: Path) -> list[np.ndarray]:
    images = []
    for name in CLEAR_PORTRAITS:
        path = portraits_dir / name
        if path.is_file():
            images.append(load_image(path))
    if len(images) < 3:
        pytest.skip("the clear portraits are missing from ../shared/data/portraits")
    return images


def read_clip(path: Path, max_frames: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


@pytest.fixture(scope="session")
def talking_frames(shared_data: Path) -> list[np.ndarray]:
    path = shared_data / "videos" / TALKING_CLIP
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return read_clip(path, 60)
