"""Plain data types shared by every tracker backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class NoFaceError(ValueError):
    """No usable face in an image or frame; the message names the file or frame."""


@dataclass
class HeadPose:
    """Head rotation in degrees, in the model's conventions (``mmfa_studio/model/keypoints.py``):
    +yaw turns the face to the image right, +pitch tilts it up, +roll turns it clockwise on screen."""

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll], dtype=np.float32)


@dataclass
class Face:
    """One detected face, in pixels of the image given to ``detect``.

    box: (4,) x0, y0, x1, y1 (the landmarks' bounding box); landmarks: N×2 (x, y) — 478 MediaPipe mesh points
    (468 + 10 iris) or 68 points (face-alignment); landmarks_3d: N×3 (x, y, z) with z into the screen in pixel
    units where the backend gives depth, else None; score: detection confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    pose: HeadPose | None = None
    landmarks_3d: np.ndarray | None = None

    @property
    def size(self) -> float:
        """The longer side of the box in pixels (faces are sorted by this, largest first)."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float64)

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by ``factor`` (pose is unchanged by uniform scaling).

        Pixel centres sit at integers, so x_new = (x + 0.5) · factor - 0.5."""
        def move(p: np.ndarray) -> np.ndarray:
            out = p * factor
            out[..., :2] += 0.5 * factor - 0.5
            return out

        box = self.box * factor + (0.5 * factor - 0.5)
        l3 = None if self.landmarks_3d is None else move(self.landmarks_3d)
        return Face(box, move(self.landmarks), self.score, self.pose, l3)
