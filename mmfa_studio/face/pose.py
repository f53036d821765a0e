"""Head pose (yaw, pitch, roll in degrees, the model's conventions) from 2D landmarks.

The pose is the rotation that maps a canonical, frontal 3D face shape onto the observed landmarks, found with
``cv2.solvePnP(..., flags=cv2.SOLVEPNP_SQPNP)`` (the default ITERATIVE solver sometimes returns a solution
behind the camera, which flips roll by 180°). The canonical shape (``data/canonical_face.npz``) is the mean of
MediaPipe's 3D mesh over many real faces, each frontalised by its own mirror symmetry; it is built by
``python -m mmfa_studio.face.canonical`` and stored in the model's frame (x right, y down, z into the screen,
nose tip at negative z). So solvePnP's rotation *is* R in x_posed = R · x_canonical, and the angles come from
the same decomposition as ``mmfa_studio.model.keypoints.euler_from_matrix`` (R = R_roll · R_yaw · R_pitch).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .types import Face, HeadPose

CANONICAL_PATH = Path(__file__).with_name("data") / "canonical_face.npz"

# MediaPipe mesh index of each of the 68 iBUG/dlib landmarks (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
# mouth 48-67): lets the 68-point backend use the same canonical shape and measures.
MESH_INDEX_OF_68 = np.array([
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
])


def euler_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """NumPy twin of ``mmfa_studio.model.keypoints.euler_from_matrix`` for one 3×3 matrix → (yaw, pitch, roll).

    Kept here so that the face package needs no torch; tests check both agree.
    """
    r = rotation
    yaw = np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(-r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """NumPy twin of ``mmfa_studio.model.keypoints.rotation_matrix``: R = R_roll · R_yaw · R_pitch (3×3, degrees)."""
    y, p, r = np.radians([yaw, pitch, roll])
    r_yaw = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    r_pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    r_roll = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return r_roll @ r_yaw @ r_pitch


@dataclass(frozen=True)
class CanonicalFace:
    """points: 478×3 mean shape (model frame, unit inter-ocular distance); rigid: indices used for pose
    (points that move little with expression); pairs: P×2 mirror pairs (person's left, person's right)."""

    points: np.ndarray
    rigid: np.ndarray
    pairs: np.ndarray


@functools.lru_cache(maxsize=1)
def canonical_face() -> CanonicalFace:
    with np.load(CANONICAL_PATH) as data:
        return CanonicalFace(data["points"].astype(np.float64), data["rigid"], data["pairs"])


def _camera(image_shape: tuple[int, ...]) -> np.ndarray:
    """A pinhole camera with a ~53° field of view over the longer side (focal = longer side), centred."""
    h, w = image_shape[:2]
    f = float(max(h, w))
    return np.array([[f, 0, w / 2.0], [0, f, h / 2.0], [0, 0, 1]], dtype=np.float64)


def _rigid_index(count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(landmark indices, canonical indices) of the points that move little with expression, for ``count``
    landmarks; None for a scheme other than MediaPipe's mesh (468/478) or iBUG's 68."""
    canon = canonical_face()
    if count >= 468:
        return canon.rigid, canon.rigid
    if count == 68:
        keep = np.r_[17:48]  # brows, nose and eyes: the rigid part of the 68 scheme
        return keep, MESH_INDEX_OF_68[keep]
    return None


def _rigid_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(canonical M×3, observed M×2) rigid points of ``landmarks``, or None for an unknown scheme."""
    index = _rigid_index(len(landmarks))
    if index is None:
        return None
    observed, canonical = index
    return canonical_face().points[canonical], landmarks[observed, :2]


def head_pose(landmarks: np.ndarray, image_shape: tuple[int, ...]) -> HeadPose | None:
    """Head pose from N×2 pixel landmarks (478/468 MediaPipe points or 68 iBUG points), or None if PnP fails."""
    points = _rigid_points(landmarks)
    if points is None:
        return None
    object_points, image_points = points
    ok, rvec, _tvec = cv2.solvePnP(
        object_points.astype(np.float64), np.ascontiguousarray(image_points, dtype=np.float64),
        _camera(image_shape), None, flags=cv2.SOLVEPNP_SQPNP,
    )
    if not ok:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return HeadPose(*euler_from_matrix(rotation))


@dataclass(frozen=True)
class HeadPlacement:
    """Where a posed head sits in its image and how large it is.

    A weak-perspective fit of the canonical face's rigid points, rotated by the tracked pose, to the observed
    ones: observed ≈ scale · (R · canonical)_xy + offset. Unlike the landmarks' bounding box, neither figure
    moves when the mouth opens or the head turns, so two placements of one head compare its movement alone.
    """

    scale: float  # pixels per canonical unit (the inter-ocular distance)
    centre: np.ndarray  # (2,) pixels: where the rigid points' centroid lies


def head_placement(landmarks: np.ndarray, pose: HeadPose) -> HeadPlacement | None:
    """:class:`HeadPlacement` of N×2 pixel landmarks posed by ``pose``; None for an unknown landmark scheme."""
    points = _rigid_points(landmarks)
    if points is None:
        return None
    canonical, observed = points
    projected = (canonical @ rotation_from_euler(pose.yaw, pose.pitch, pose.roll).T)[:, :2]
    projected = projected - projected.mean(axis=0)
    centre = observed.mean(axis=0)
    scale = float((projected * (observed - centre)).sum() / (projected * projected).sum())
    return HeadPlacement(scale, centre.astype(np.float64))


def nonrigid_motion(reference: Face, driving: Face) -> np.ndarray | None:
    """N×2: how each landmark moved from ``reference`` to ``driving`` beyond the head's rigid movement — the
    mouth opening, the eyes closing, the brows rising — in units of the reference head's scale
    (:class:`HeadPlacement`), along the driving image's axes.

    The rigid prediction turns the reference's 3D landmarks about their rigid centroid by the change of
    tracked pose and zooms and shifts them by the change of placement. None when either face lacks a pose,
    the reference lacks depth, or the two landmark sets differ.
    """
    if reference.pose is None or driving.pose is None or reference.landmarks_3d is None:
        return None
    index = _rigid_index(len(reference.landmarks))
    if index is None or len(driving.landmarks) != len(reference.landmarks):
        return None
    ref = head_placement(reference.landmarks, reference.pose)
    drv = head_placement(driving.landmarks, driving.pose)
    points = reference.landmarks_3d.astype(np.float64)
    points = points - points[index[0]].mean(axis=0)
    turn = rotation_from_euler(driving.pose.yaw, driving.pose.pitch, driving.pose.roll) @ rotation_from_euler(
        reference.pose.yaw, reference.pose.pitch, reference.pose.roll).T
    predicted = (drv.scale / ref.scale) * (points @ turn.T)[:, :2] + drv.centre
    return (driving.landmarks[:, :2] - predicted) / ref.scale


def frontalising_rotation(points: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Rotation R (3×3) of a 3D face shape in the model frame, from its own geometry (used to build the canonical).

    x axis: mean direction from each right-side point to its mirror (person's left = image right when frontal);
    z axis: normal of the least-squares plane through the mesh, pointing into the screen; y = z × x (down).
    Columns of R are these axes, so R maps the frontal frame to the observed one.
    """
    left, right = points[pairs[:, 0]], points[pairs[:, 1]]
    ex = (left - right).mean(axis=0)
    centred = points[:468] - points[:468].mean(axis=0)
    ez = np.linalg.svd(centred, full_matrices=False)[2][2]
    if ez[2] < 0:
        ez = -ez
    ex = ex - ex.dot(ez) * ez
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    return np.stack([ex, ey, ez], axis=1)
