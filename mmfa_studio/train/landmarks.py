"""Per-frame face landmarks of a prepared dataset, for training with ``train.landmark_expression``.

``mmfa-studio prepare … --landmarks`` tracks the face on every prepared crop and stores, per clip,
ROOT/landmarks/<clip id>.npz: ``points`` F×N×2 (crop pixels) and ``depth`` F×N (the tracker's z, pixel units),
both float16, ``pose`` F×3 (degrees) and ``found`` F (bool): about 2.4 KB a frame. The trainer reads each
pair's non-rigid landmark movement from them, as reenactment reads a driver's.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_path
from ..face import Face, HeadPose

if TYPE_CHECKING:
    from .prepared import PreparedIndex

LANDMARKS_DIR = "landmarks"
LANDMARK_COUNT = 478  # the MediaPipe mesh with irises: every pair's landmark tensors have this many rows
_CHUNK = 32  # frames decoded at a time


@dataclass
class ClipLandmarks:
    """One clip's tracked faces (F frames, N landmarks)."""

    points: np.ndarray  # F×N×2
    depth: np.ndarray  # F×N: with points, the tracker's 3D landmarks (its x, y are the 2D ones)
    pose: np.ndarray  # F×3 (yaw, pitch, roll) degrees
    found: np.ndarray  # F bool

    def __post_init__(self) -> None:
        n = len(self.found)
        if (self.points.shape != (n, LANDMARK_COUNT, 2) or self.depth.shape != (n, LANDMARK_COUNT)
                or self.pose.shape != (n, 3)):
            raise ValueError(f"landmarks for {n} frames must be {n}×{LANDMARK_COUNT}×2 points, {n}×{LANDMARK_COUNT} "
                             f"depths and {n}×3 poses, not {self.points.shape}, {self.depth.shape}, {self.pose.shape}")

    def face(self, frame: int) -> Face | None:
        """The face tracked on ``frame``, or None when none was found."""
        if not self.found[frame]:
            return None
        points = self.points[frame].astype(np.float64)
        box = np.array([*points.min(axis=0), *points.max(axis=0)])
        return Face(box=box, landmarks=points, score=1.0, pose=HeadPose(*map(float, self.pose[frame])),
                    landmarks_3d=np.concatenate([points, self.depth[frame, :, None].astype(np.float64)], axis=1))


def landmarks_path(root: str | Path, clip_id: str) -> Path:
    return Path(root) / LANDMARKS_DIR / f"{clip_id}.npz"


def load_clip_landmarks(root: str | Path, clip_id: str, frames: int | None = None) -> ClipLandmarks | None:
    """The clip's stored landmarks, or None when ``prepare --landmarks`` has not tracked it. ValueError (one line)
    for a file that is unreadable, of another format, or for another number of ``frames``."""
    path = landmarks_path(root, clip_id)
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            tracked = ClipLandmarks(points=data["points"], depth=data["depth"], pose=data["pose"],
                                    found=data["found"].astype(bool))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a landmark file of this release ({exc}); run `mmfa-studio prepare` "
                         "with --landmarks again to track it anew") from None
    n = len(tracked.found)
    if frames is not None and n != frames:
        raise ValueError(f"{path} holds {n} frames of landmarks for a clip of {frames}; run `mmfa-studio prepare` "
                         "with --landmarks again to track it anew")
    return tracked


def _tracked(root: Path, clip) -> bool:
    """Whether ``clip`` has a valid landmark file (an old or broken one is tracked again)."""
    try:
        return load_clip_landmarks(root, clip.id, clip.frames) is not None
    except ValueError:
        return False


def track_landmarks(index: PreparedIndex, progress: bool = True) -> int:
    """Track every clip of ``index`` that has no landmark file yet (resumable); returns how many it tracked."""
    from tqdm import tqdm

    from ..face.tracker import create_tracker
    from .prepared import read_frames

    todo = [c for c in index.clips if not _tracked(index.root, c)]
    if not todo:
        return 0
    (index.root / LANDMARKS_DIR).mkdir(exist_ok=True)
    tracker = create_tracker("mediapipe", max_faces=1)
    bar = tqdm(total=sum(c.frames for c in todo), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for clip in todo:
            n = clip.frames
            points = np.zeros((n, LANDMARK_COUNT, 2), np.float16)
            depth = np.zeros((n, LANDMARK_COUNT), np.float16)
            pose = np.zeros((n, 3), np.float32)
            found = np.zeros(n, bool)
            for start in range(0, n, _CHUNK):
                frames = read_frames(index, clip, range(start, min(n, start + _CHUNK)))
                for k, frame in enumerate(frames):
                    faces = tracker.detect(frame)
                    face = faces[0] if faces else None
                    if (face is not None and face.pose is not None and face.landmarks_3d is not None
                            and len(face.landmarks) == LANDMARK_COUNT):
                        i = start + k
                        points[i], depth[i] = face.landmarks[:, :2], face.landmarks_3d[:, 2]
                        pose[i], found[i] = face.pose.as_array(), True
                bar.update(len(frames))
            with atomic_path(landmarks_path(index.root, clip.id)) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, points=points, depth=depth, pose=pose, found=found)
    finally:
        bar.close()
        tracker.close()
    return len(todo)
