"""Dense anchors: the face mesh's points that carry expression — lips, eyelids, brows, nose, face outline.

They join the dense motion's spline (``model/anchors.py``), so what the tracker sees the mouth and lids do, the
render can follow. Irises are left out: under a closed lid the tracker still places them, which would pull the
lid open again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .pose import canonical_face
from .types import Face

MESH_POINTS = 468  # the mesh proper; the 10 iris points follow it


@functools.lru_cache(maxsize=1)
def anchor_indices() -> np.ndarray:
    """Sorted mesh indices of the anchors (MediaPipe's own region definitions)."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    regions = (mesh.FACEMESH_LIPS, mesh.FACEMESH_LEFT_EYE, mesh.FACEMESH_RIGHT_EYE, mesh.FACEMESH_LEFT_EYEBROW,
               mesh.FACEMESH_RIGHT_EYEBROW, mesh.FACEMESH_NOSE, mesh.FACEMESH_FACE_OVAL)
    return np.array(sorted({i for region in regions for edge in region for i in edge}), dtype=np.int64)


@functools.lru_cache(maxsize=1)
def steady_anchor_rows() -> np.ndarray:
    """Rows (into :func:`anchor_indices`) of the nose and face-outline anchors among the canonical face's rigid
    points, from which the tracker reads the head's pose, and which no named expression moves: an expression that
    moves them reads as a head turn. (The rigid points' eyes and brows are left out: blinks and brows move them.)"""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    regions = {i for region in (mesh.FACEMESH_NOSE, mesh.FACEMESH_FACE_OVAL) for edge in region for i in edge}
    steady = np.intersect1d(np.fromiter(regions, dtype=np.int64), canonical_face().rigid)
    return np.flatnonzero(np.isin(anchor_indices(), steady))


def pixels_to_units(points: np.ndarray, crop_size: int) -> np.ndarray:
    """Crop pixels (pixel centres at integers) → the model's normalised units (crop = [-1, 1])."""
    return (np.asarray(points, dtype=np.float64) + 0.5) * (2.0 / crop_size) - 1.0


def anchor_movement(movement: np.ndarray) -> np.ndarray:
    """The anchors' rows of a per-landmark movement (N_landmarks×2, e.g. :func:`~mmfa_studio.face.nonrigid_motion`)."""
    return np.asarray(movement)[anchor_indices()]


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising ‖s·R·source + t − target‖² over M×3 point sets (Umeyama 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sig, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / a.var(axis=0).sum())
    return scale, rotation, mu_t - scale * rotation @ mu_s


def without_head_motion(layout: np.ndarray, change: np.ndarray) -> np.ndarray:
    """An expression's change of canonical anchors (…×N×3, added to ``layout`` N×3) less the similarity motion it
    gives the steady anchors (:func:`steady_anchor_rows`): a decoded latent may carry a little turn, zoom or shift
    of the whole face, which the tracker would read as head motion; what is left moves only the expression."""
    layout = np.asarray(layout, dtype=np.float64)
    change = np.asarray(change, dtype=np.float64)
    rows = steady_anchor_rows()
    out = np.empty_like(change)
    for index in np.ndindex(change.shape[:-2]):
        edited = layout + change[index]
        s, rotation, t = _similarity(edited[rows], layout[rows])
        out[index] = s * edited @ rotation.T + t - layout
    return out


@dataclass(frozen=True)
class FaceAnchors:
    """A tracked face's anchors, where they lie and how its canonical frame maps onto them.

    points: N×3 in the model's units (x, y normalised over the crop, depth into the screen in the same units,
    zero at the anchors' centroid); layout: N×3 the same anchors in the canonical face's frame and units
    (frontal, inter-ocular distance 1: pose, size and place gone, identity and expression left);
    to_points: 3×3, a canonical offset (row vector) → the matching offset of ``points``.
    """

    points: np.ndarray
    layout: np.ndarray
    to_points: np.ndarray


def _to_canonical(mesh: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) taking a tracked mesh (any pixel frame) onto the canonical face, fitted on its rigid points."""
    canon = canonical_face()
    return _similarity(mesh[canon.rigid], canon.points[canon.rigid])


def face_anchors(face: Face, crop_size: int) -> FaceAnchors | None:
    """:class:`FaceAnchors` of a face tracked in a model crop (``crop_size`` pixels); None without a 3D mesh."""
    if face.landmarks_3d is None or len(face.landmarks_3d) < MESH_POINTS:
        return None
    mesh = np.asarray(face.landmarks_3d, dtype=np.float64)
    points = mesh[anchor_indices()]
    xy = pixels_to_units(points[:, :2], crop_size)
    z = points[:, 2] * (2.0 / crop_size)
    scale, rotation, shift = _to_canonical(mesh)
    # canonical offset d → mesh pixels Rᵀ·d/s → model units ×2/size (x, y and depth alike)
    to_points = rotation / scale * (2.0 / crop_size)
    return FaceAnchors(np.concatenate([xy, (z - z.mean())[:, None]], axis=1), scale * points @ rotation.T + shift,
                       to_points)


def canonical_anchors(landmarks_3d: np.ndarray) -> np.ndarray:
    """N×3 anchors of one tracked face (478/468×3 mesh, any pixel frame) in the canonical face's frame and units
    (see :class:`FaceAnchors`)."""
    mesh = np.asarray(landmarks_3d, dtype=np.float64)
    scale, rotation, shift = _to_canonical(mesh)
    return scale * mesh[anchor_indices()] @ rotation.T + shift


def mean_face_anchors() -> np.ndarray:
    """N×3 anchors of the canonical (mean, neutral-ish) face."""
    return canonical_face().points[anchor_indices()]


# Mesh indices of what the expression controls measure (all among the anchors).
_MOUTH = (78, 308, 13, 14)  # inner corners, inner upper and lower lip
_MOUTH_CORNERS = (61, 291)
_EYES = {"left": (362, 263, 386, 374), "right": (33, 133, 159, 145)}  # the person's left and right eye
_BROWS = {"left": (296, 334, 293), "right": (66, 105, 63)}  # upper brow points above each eye


# Lids and inner lips as facing pairs (upper, lower, left to right) between two corners, with the smallest gap a
# render may close them to (a fraction of the corner distance): an edit or a driver's movement that takes a lid
# past the other folds the spline through them, and the render shows the eye mirrored inside out.
@dataclass(frozen=True)
class ClosingPairs:
    upper: np.ndarray  # K rows into anchor_indices()
    lower: np.ndarray  # K rows
    corners: np.ndarray  # 2 rows
    least_gap: float


@functools.lru_cache(maxsize=1)
def closing_pairs() -> tuple[ClosingPairs, ...]:
    """The eyes' lids and the inner lips as :class:`ClosingPairs` (rows of the anchors)."""
    groups = (((246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155), (33, 133), 0.03),
              ((466, 388, 387, 386, 385, 384, 398), (249, 390, 373, 374, 380, 381, 382), (263, 362), 0.03),
              ((191, 80, 81, 82, 13, 312, 311, 310, 415), (95, 88, 178, 87, 14, 317, 402, 318, 324), (78, 308),
               0.01))
    return tuple(ClosingPairs(_rows(upper), _rows(lower), _rows(corners), gap)
                 for upper, lower, corners, gap in groups)


# closing_pairs()' row of each eye, and where between its lids an eye's change of opening pivots (0: at the upper
# lid, 1: at the lower): a blink is mostly the upper lid coming down.
_EYE_PAIRS = {"eye_open_left": 1, "eye_open_right": 0}
_LID_PIVOT = 0.8
MAX_REOPENING = 2.0  # the most an eye's opening is scaled up: a driver's startle, not a lid torn off the eyeball


def scale_lids(layouts, factors):
    """``layouts`` (…×N×3 canonical anchors; a NumPy array or a torch tensor) with each eye's lids moved together
    (factor < 1) or apart about a line near the lower lid, every lid pair's gap scaled by that eye's factor in
    ``factors`` (…×2: the person's left eye, then the right); the corners and every other anchor stay."""
    out = layouts * 1.0  # a copy, in either library
    pairs = closing_pairs()
    for column, name in enumerate(("eye_open_left", "eye_open_right")):
        pair = pairs[_EYE_PAIRS[name]]
        factor = factors[..., column, None, None]
        upper, lower = out[..., pair.upper, :], out[..., pair.lower, :]
        pivot = upper + _LID_PIVOT * (lower - upper)
        out[..., pair.upper, :] = pivot + factor * (upper - pivot)
        out[..., pair.lower, :] = pivot + factor * (lower - pivot)
    return out


def with_eye_openings(layout: np.ndarray, wanted) -> np.ndarray:
    """``layout`` (N×3 canonical anchors) with each eye's lids moved (:func:`scale_lids`) so that its opening
    (:func:`anchor_measures`' ``eye_open_left`` and ``eye_open_right``, gap over width) is ``wanted`` (left, right;
    NaN: as it is), scaled up at most :data:`MAX_REOPENING` times; an eye shut in ``layout`` stays shut (a closed
    lid has no gap to scale)."""
    layout = np.asarray(layout, dtype=np.float64)
    measured = anchor_measures(layout)
    current = np.array([float(measured["eye_open_left"]), float(measured["eye_open_right"])])
    wanted = np.asarray(wanted, dtype=np.float64)
    usable = np.isfinite(wanted) & (current >= 1e-3)
    factors = np.where(usable, np.clip(np.where(usable, wanted, 0.0) / np.maximum(current, 1e-3), 0.0, MAX_REOPENING),
                       1.0)
    return scale_lids(layout, factors)


@functools.lru_cache(maxsize=64)  # reenactment measures a dozen layouts a frame
def _rows(indices: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(anchor_indices(), np.asarray(indices))  # shared by its callers: not to be written


def anchor_measures(anchors) -> dict:
    """Expression measures of canonical anchors (…×N×3, canonical units: inter-ocular distance 1; a NumPy array
    or a torch tensor, which keeps the measures differentiable), each of shape (…): ``mouth_open`` inner-lip gap
    / mouth width, ``eye_open_left``/``_right`` lid gap / eye width, ``mouth_width`` corner to corner,
    ``brow_height`` the brows' mean height above the eyes' corners."""
    a = anchors

    def norm(v):
        return ((v ** 2).sum(-1) + 1e-12) ** 0.5

    def gap(indices: tuple[int, int, int, int]):
        p = a[..., _rows(indices), :]
        return norm(p[..., 2, :] - p[..., 3, :]) / (norm(p[..., 0, :] - p[..., 1, :]) + 1e-6)

    corners = a[..., _rows(_MOUTH_CORNERS), :]
    brows = [a[..., _rows(_BROWS[side]), 1].mean(-1) - a[..., _rows(_EYES[side][:2]), 1].mean(-1)
             for side in ("left", "right")]
    return {
        "mouth_open": gap(_MOUTH),
        "eye_open_left": gap(_EYES["left"]),
        "eye_open_right": gap(_EYES["right"]),
        "mouth_width": norm(corners[..., 0, :] - corners[..., 1, :]),
        "brow_height": -(brows[0] + brows[1]) / 2,  # y points down: higher brows, larger value
    }
