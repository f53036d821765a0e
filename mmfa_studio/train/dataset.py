"""Training pairs: a source and a driving frame of the same clip, augmented alike.

Every sample is a pure function of (seed, global sample number): the sampler hands out consecutive numbers
(interleaved over DDP ranks), so a resumed run draws exactly the pairs an uninterrupted run would have drawn,
whatever the number of data-loader workers. Only the two frames of a pair are decoded (``read_frames``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..face import head_placement, nonrigid_motion
from ..face.anchors import anchor_indices, anchor_measures, pixels_to_units
from .config import Augmentation
from .landmarks import LANDMARK_COUNT, ClipLandmarks, load_clip_landmarks


class ClipLike(Protocol):
    id: str
    frames: int
    pose: np.ndarray | None  # frames×3 (yaw, pitch, roll) degrees, NaN where unknown; or None
    # frames×3 (scale, x, y): the head's placement (face.head_placement) in the clip's crop pixels; or None
    placement: np.ndarray | None


class FrameStore(Protocol):
    """Clips and random access to their frames (``prepared.py``'s format, or frames held in memory)."""

    clips: Sequence[ClipLike]
    size: int

    def read(self, clip: ClipLike, frame_indices: Sequence[int]) -> np.ndarray:
        """N×size×size×3 uint8 RGB."""
        ...

    def landmarks(self, clip: ClipLike) -> ClipLandmarks | None:
        """The clip's tracked landmarks, or None."""
        ...


class PreparedStore:
    """A dataset written by ``mmfa-studio prepare`` (see :mod:`mmfa_studio.train.prepared`)."""

    def __init__(self, root: str | Path):
        try:
            from . import prepared  # imported here: the trainer must import without it (e.g. for tests)
        except ImportError as exc:
            raise ValueError(f"the prepared-data reader is not available ({exc})") from None

        self._prepared = prepared
        self.index = prepared.load_index(Path(root))
        self.clips = [c for c in self.index.clips if c.frames >= 1]
        self.size = int(self.index.size)
        if not self.clips:
            raise ValueError(f"training data {root} holds no clips with frames")
        self._landmarks: dict[str, ClipLandmarks | None] = {}

    def read(self, clip: ClipLike, frame_indices: Sequence[int]) -> np.ndarray:
        return self._prepared.read_frames(self.index, clip, list(frame_indices))

    def landmarks(self, clip: ClipLike) -> ClipLandmarks | None:
        """The clip's tracked landmarks (``prepare --landmarks``), loaded once; None where not tracked."""
        if clip.id not in self._landmarks:
            self._landmarks[clip.id] = load_clip_landmarks(self.index.root, clip.id, clip.frames)
        return self._landmarks[clip.id]


@dataclass
class ArrayClip:
    id: str
    frames: int
    pose: np.ndarray | None = None
    placement: np.ndarray | None = None


class ArrayStore:
    """Clips held in memory as N×S×S×3 uint8 arrays (tests, benchmarks)."""

    def __init__(self, videos: dict[str, np.ndarray], poses: dict[str, np.ndarray] | None = None,
                 placements: dict[str, np.ndarray] | None = None, landmarks: dict[str, ClipLandmarks] | None = None):
        if not videos:
            raise ValueError("no clips given")
        self.videos = videos
        self.size = int(next(iter(videos.values())).shape[1])
        poses, placements = poses or {}, placements or {}
        self.clips = [ArrayClip(k, int(v.shape[0]), poses.get(k), placements.get(k)) for k, v in videos.items()]
        self._landmarks = landmarks or {}

    def read(self, clip: ClipLike, frame_indices: Sequence[int]) -> np.ndarray:
        return self.videos[clip.id][list(frame_indices)]

    def landmarks(self, clip: ClipLike) -> ClipLandmarks | None:
        return self._landmarks.get(clip.id)


@dataclass
class PairSample:
    source: torch.Tensor  # 3×H×W uint8 (to_float() gives [0, 1])
    driving: torch.Tensor  # 3×H×W uint8
    source_pose: torch.Tensor  # 3 (yaw, pitch, roll) degrees, model conventions; 0 where unknown
    driving_pose: torch.Tensor  # 3
    has_pose: torch.Tensor  # bool scalar: both frames have a pseudo-label
    # 3 (scale, x, y): the head's placement after augmentation, x and y in the model's normalised units (the
    # image spans [-1, 1]), scale in arbitrary units (only the ratio between the two frames means something)
    source_placement: torch.Tensor
    driving_placement: torch.Tensor
    has_placement: torch.Tensor  # bool scalar: both frames have one
    # With landmarks (PairDataset(landmarks=True)), else zeros: the source's landmarks N×2, their non-rigid
    # movement to the driving frame N×2 and the driving frame's own landmarks N×2, all after augmentation in the
    # model's normalised units.
    source_landmarks: torch.Tensor
    landmark_motion: torch.Tensor
    has_landmarks: torch.Tensor  # bool scalar
    driving_landmarks: torch.Tensor

    def pin_memory(self) -> PairSample:  # called by DataLoader(pin_memory=True)
        return PairSample(*(getattr(self, f).pin_memory() for f in self.__dataclass_fields__))


def sample_rng(seed: int, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, number, 0x6D6D6661])


def colour_jitter(rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue: float) -> tuple:
    """Random colour-jitter parameters (the same tuple is then applied to both frames)."""
    return (
        1.0 + rng.uniform(-brightness, brightness),
        1.0 + rng.uniform(-contrast, contrast),
        1.0 + rng.uniform(-saturation, saturation),
        rng.uniform(-hue, hue),
    )


def apply_colour(image: np.ndarray, params: tuple) -> np.ndarray:
    """H×W×3 float32 RGB in [0, 1] → jittered copy (brightness, contrast, saturation, hue)."""
    b, c, s, h = params
    out = image * b
    mean = out.mean()
    out = (out - mean) * c + mean
    grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (out - grey[..., None]) * s + grey[..., None]
    if h:
        hsv = cv2.cvtColor(np.clip(out, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + h * 360.0) % 360.0
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out, 0.0, 1.0)


def affine_matrix(size: int, scale: float, shift: tuple[float, float], flip: bool, rotation: float = 0.0) -> np.ndarray:
    """2×3 pixel-space matrix: zoom by ``scale`` and rotate (degrees) about the centre, shift by a fraction
    of the size, optionally mirror horizontally."""
    centre = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((centre, centre), rotation, scale)
    m[:, 2] += np.array(shift) * size
    if flip:  # x → size−1−x after the zoom
        m[0, :] *= -1
        m[0, 2] += size - 1
    return m


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 float [0, 1] → 3×H×W uint8 tensor (4× less shared memory between loader workers and less
    host→device traffic than float; the trainer divides by 255 on the device)."""
    return torch.from_numpy(np.ascontiguousarray((image * 255.0 + 0.5).astype(np.uint8).transpose(2, 0, 1)))


def frame_motion_features(tracked: ClipLandmarks) -> np.ndarray:
    """F×4 per frame of a clip: (mouth open, mean eye open, yaw, pitch) from its tracked mesh, NaN where no face
    was found; what :func:`motion_difference` compares."""
    mesh = np.concatenate([tracked.points, tracked.depth[..., None]], axis=-1).astype(np.float64)
    measures = anchor_measures(mesh[:, anchor_indices()])
    features = np.stack([measures["mouth_open"], (measures["eye_open_left"] + measures["eye_open_right"]) / 2,
                         tracked.pose[:, 0], tracked.pose[:, 1]], axis=-1)
    features[~tracked.found] = np.nan
    return features


# What one unit of motion difference is: a mouth opening by 0.3 of its width, the eyes by 0.25 of theirs, a turn of
# 30° yaw or 20° pitch.
_MOTION_UNITS = np.array([0.3, 0.25, 30.0, 20.0])


def motion_difference(features: np.ndarray, a: int, candidates: np.ndarray) -> np.ndarray:
    """How far each candidate frame's expression and pose lie from frame ``a``'s (−inf where either has no face)."""
    d = np.abs(features[candidates] - features[a]) / _MOTION_UNITS
    score = d.sum(axis=-1)
    return np.where(np.isfinite(score), score, -np.inf)


class PairDataset(Dataset):
    """Map-style dataset indexed by *global sample number* (use :class:`ResumableSampler`).

    Each sample: a random clip (weighted by its frame count), two frames at most ``max_gap`` apart
    (0 = any two), the same flip/zoom/shift/colour jitter on both, resized to ``size``. With ``candidates`` > 1
    (needs ``landmarks``) the driving frame is the one of that many draws that differs most from the source in
    expression and pose; with ``require_landmarks`` a pair whose frames have no tracked face is drawn again (a
    few times).
    """

    _REDRAWS = 8

    def __init__(self, store: FrameStore, size: int, augment: Augmentation, seed: int = 0, max_gap: int = 0,
                 landmarks: bool = False, candidates: int = 1, require_landmarks: bool = False):
        if not store.clips:
            raise ValueError("the dataset holds no clips")
        if (candidates > 1 or require_landmarks) and not landmarks:
            raise ValueError("choosing pairs by their tracked motion needs landmarks")
        self.store, self.size, self.augment, self.seed, self.max_gap = store, size, augment, seed, max_gap
        self.landmarks, self.candidates, self.require_landmarks = landmarks, candidates, require_landmarks
        frames = np.array([max(1, c.frames) for c in store.clips], dtype=np.float64)
        self.clip_weights = frames / frames.sum()
        self._features: dict[str, np.ndarray | None] = {}

    def _motion_features(self, clip: ClipLike) -> np.ndarray | None:
        if clip.id not in self._features:
            tracked = self.store.landmarks(clip)
            self._features[clip.id] = None if tracked is None else frame_motion_features(tracked)
        return self._features[clip.id]

    def __len__(self) -> int:
        return 2**62  # samples are numbered, not enumerated

    def pair_indices(self, rng: np.random.Generator) -> tuple[int, int, int]:
        ci = int(rng.choice(len(self.store.clips), p=self.clip_weights))
        n = self.store.clips[ci].frames
        a = int(rng.integers(n))
        near = self.max_gap and self.max_gap < n
        lo, hi = (max(0, a - self.max_gap), min(n - 1, a + self.max_gap)) if near else (0, n - 1)
        if self.candidates <= 1:
            return ci, a, int(rng.integers(lo, hi + 1))
        choices = rng.integers(lo, hi + 1, size=self.candidates)
        features = self._motion_features(self.store.clips[ci])
        if features is None:
            return ci, a, int(choices[0])
        return ci, a, int(choices[int(np.argmax(motion_difference(features, a, choices)))])

    def _tracked_pair(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """:meth:`pair_indices`, drawn again while ``require_landmarks`` finds a frame without a tracked face."""
        ci, a, b = self.pair_indices(rng)
        for _ in range(self._REDRAWS if self.require_landmarks else 0):
            tracked = self.store.landmarks(self.store.clips[ci])
            if tracked is not None and tracked.found[a] and tracked.found[b]:
                break
            ci, a, b = self.pair_indices(rng)
        return ci, a, b

    def __getitem__(self, number: int) -> PairSample:
        rng = sample_rng(self.seed, int(number))
        ci, a, b = self._tracked_pair(rng)
        clip = self.store.clips[ci]
        frames = self.store.read(clip, [a, b])  # 2×S×S×3 uint8
        aug = self.augment
        flip = bool(rng.random() < aug.flip)
        scale = 1.0 + rng.uniform(-aug.scale, aug.scale)
        shift = (rng.uniform(-aug.shift, aug.shift), rng.uniform(-aug.shift, aug.shift))
        colour = colour_jitter(rng, aug.brightness, aug.contrast, aug.saturation, aug.hue)
        src_size = frames.shape[1]
        matrix = affine_matrix(src_size, scale, shift, flip)
        if src_size != self.size:  # resize in the same warp
            matrix = matrix * (self.size / src_size)
        images = []
        for frame in frames:
            warped = warp(frame, matrix, self.size).astype(np.float32) / 255.0
            images.append(to_tensor(apply_colour(warped, colour)))
        poses, has = [], True
        for i in (a, b):
            p = None if clip.pose is None else np.asarray(clip.pose[i], dtype=np.float32)
            if p is None or not np.all(np.isfinite(p)):
                has, p = False, np.zeros(3, np.float32)
            elif flip:  # a mirror image turns yaw and roll the other way; pitch stays
                p = p * np.array([-1.0, 1.0, -1.0], np.float32)
            poses.append(torch.from_numpy(np.ascontiguousarray(p)))
        places, placed = [], clip.placement is not None
        for i in (a, b):
            q = None if clip.placement is None else np.asarray(clip.placement[i], dtype=np.float64)
            if q is None or not np.all(np.isfinite(q)):
                placed, q = False, np.array([1.0, 0.0, 0.0])
            else:  # the frames' own warp moves and zooms the head too
                centre = matrix[:, :2] @ q[1:] + matrix[:, 2]
                q = np.array([q[0] * np.sqrt(abs(np.linalg.det(matrix[:, :2]))), *((2 * centre + 1) / self.size - 1)])
            places.append(torch.from_numpy(q.astype(np.float32)))
        points, motion, found, driving_points = self._landmark_motion(clip, a, b, matrix)
        return PairSample(images[0], images[1], poses[0], poses[1], torch.tensor(has), places[0], places[1],
                          torch.tensor(placed), points, motion, torch.tensor(found), driving_points)

    def _landmark_motion(self, clip: ClipLike, a: int, b: int,
                         matrix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, bool, torch.Tensor]:
        """Source landmarks, their non-rigid movement to frame b and frame b's landmarks, through the pair's warp
        ``matrix`` (prepared pixels → output pixels), in normalised units; zeros and False without landmarks."""
        zeros = torch.zeros(LANDMARK_COUNT, 2)
        tracked = self.store.landmarks(clip) if self.landmarks else None
        source, driving = (None, None) if tracked is None else (tracked.face(a), tracked.face(b))
        movement = None if source is None or driving is None else nonrigid_motion(source, driving)
        if movement is None:
            return zeros, zeros.clone(), False, zeros.clone()
        placement = head_placement(source.landmarks, source.pose)
        if placement is None:
            return zeros, zeros.clone(), False, zeros.clone()
        linear = matrix[:, :2]
        # movement is in source-head units along the prepared crop's axes: turn (and mirror) it like the
        # image, then size it by the head in output pixels, 2/size per pixel.
        moved = movement @ linear.T * (2.0 * placement.scale / self.size)
        as_tensor = lambda v: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        placed = lambda face: as_tensor(pixels_to_units(face.landmarks @ linear.T + matrix[:, 2], self.size))
        return placed(source), as_tensor(moved), True, placed(driving)


def collate_pairs(samples: list[PairSample]) -> PairSample:
    return PairSample(*(torch.stack([getattr(s, f) for s in samples]) for f in PairSample.__dataclass_fields__))


class ResumableSampler(Sampler[int]):
    """Endless global sample numbers for one DDP rank: rank, rank + world, … starting after ``start``
    samples of the whole job (start = step × batch × world when resuming)."""

    def __init__(self, rank: int = 0, world: int = 1, start: int = 0):
        self.rank, self.world, self.start = rank, world, start

    def __iter__(self) -> Iterator[int]:
        n = self.start + self.rank
        while True:
            yield n
            n += self.world


__all__ = [
    "ArrayStore", "FrameStore", "PairDataset", "PairSample", "PreparedStore", "ResumableSampler", "collate_pairs",
    "affine_matrix", "apply_colour",
]
