"""What the engine thread hands back to the GUI: typed, immutable, and holding only numpy arrays and plain data.

The engine's own types name the fields; they are imported for type checking only, because importing
:mod:`mmfa_studio.engine` imports torch, and the window must open before torch has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from mmfa_studio.engine import Face, HeadPose, Motion
    from mmfa_studio.face import CropTransform
    from mmfa_studio.motion import ExpressionControls


@dataclass(frozen=True)
class EngineInfo:
    """The loaded model, as the status bar and the editor show it."""

    device: str
    precision: str
    model_name: str
    latent_dim: int
    image_size: int
    pose_reach: dict[str, tuple[float, float]] = field(default_factory=dict)  # axis → farthest turns (°), if known
    expression_reach: float | None = None  # px the expression sliders can move a keypoint (engine.expressions.reach)
    controls: ExpressionControls | None = None  # the model's named expression controls (most models have none)


@dataclass(frozen=True)
class PhotoPreview:
    """A photo opened while no model is loaded: shown, so the user can browse, but not prepared."""

    path: str
    image: np.ndarray  # H×W×3 uint8 RGB


@dataclass(frozen=True)
class SourceInfo:
    """A prepared source photo: full image H×W×3, crop D×D×3 at the engine's output size (uint8 RGB), the faces found,
    its own pose/expression."""

    path: str | None
    face_index: int
    image: np.ndarray
    crop: np.ndarray | None
    faces: list[Face]
    pose: HeadPose | None = None
    expression: np.ndarray | None = None
    transform: CropTransform | None = None  # crop pixels ↔ photo pixels
    controls: ExpressionControls | None = None  # the model's named controls fitted to this face


@dataclass(frozen=True)
class ExpressionResult:
    """An expression latent (Z,) read from a photo or sampled, and where it came from (for the undo text)."""

    latent: np.ndarray
    origin: str


@dataclass(frozen=True)
class FrameResult:
    """One frame to display. ``crop`` D×D×3 (the output size), ``full`` H×W×3 or None, ``keypoints`` K×2 crop pixels."""

    kind: Literal["edit", "webcam"]
    seq: int
    crop: np.ndarray
    full: np.ndarray | None
    keypoints: np.ndarray | None
    motion: Motion | None = None
    driving: np.ndarray | None = None  # webcam: the (mirrored) driving frame
    driving_pose: HeadPose | None = None
    driving_expression: np.ndarray | None = None
    face_found: bool = True
    latency_ms: float = 0.0
    fps: float = 0.0  # webcam: frames rendered per second, recently
    source_fps: float = 0.0  # webcam: the driving source's own rate


@dataclass(frozen=True)
class VirtualCameraInfo:
    """A virtual camera just opened: the size and rate it took (maybe not those asked for) and its device."""

    width: int
    height: int
    fps: float
    device: str  # e.g. /dev/video2; "" where the backend does not say


@dataclass(frozen=True)
class ExportProgress:
    done: int
    total: int
