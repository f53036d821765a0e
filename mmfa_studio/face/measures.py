"""Simple expression measures from landmarks: how open the eyes and the mouth are."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .types import Face

# (corner, corner, upper lid, lower lid) per eye and (corner, corner, upper inner lip, lower inner lip).
_MESH = {"eyes": ((33, 133, 159, 145), (362, 263, 386, 374)), "mouth": (78, 308, 13, 14)}
_IBUG68 = {"eyes": ((36, 39, 37, 41), (42, 45, 44, 46)), "mouth": (60, 64, 62, 66)}


@dataclass
class ExpressionMeasures:
    """eye_open: lid gap / eye width, mean of both eyes (≈0.25-0.35 open, <0.1 closed);
    mouth_open: inner-lip gap / mouth width (0 closed, ≈0.5+ wide open)."""

    eye_open: float
    mouth_open: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _ratio(points: np.ndarray, corner_a: int, corner_b: int, top: int, bottom: int) -> float:
    width = np.linalg.norm(points[corner_a] - points[corner_b])
    return float(np.linalg.norm(points[top] - points[bottom]) / width) if width > 1e-6 else 0.0


def expression_measures(face: Face) -> ExpressionMeasures:
    """Eye- and mouth-open ratios of a face with 478/468 mesh or 68 iBUG landmarks (scale and roll invariant)."""
    pts = np.asarray(face.landmarks, dtype=np.float64)[:, :2]
    if len(pts) >= 468:
        scheme = _MESH
    elif len(pts) == 68:
        scheme = _IBUG68
    else:
        raise ValueError(f"expression measures need 468/478 or 68 landmarks, got {len(pts)}")
    eye = float(np.mean([_ratio(pts, *e) for e in scheme["eyes"]]))
    return ExpressionMeasures(eye_open=eye, mouth_open=_ratio(pts, *scheme["mouth"]))


# The mesh's points that the named controls' measures read (all among the expression anchors): the eyes'
# corners for their height and the inter-ocular distance, the mouth's outer corners, the upper brow points.
_OUTER_EYE_CORNERS = (33, 263)
_EYE_CORNERS = (33, 133, 263, 362)
_MOUTH_CORNERS = (61, 291)
_BROW_POINTS = (66, 105, 63, 296, 334, 293)


@dataclass
class ControlMeasures:
    """What the named expression controls move, read from a tracked mesh: each eye's opening (lid gap / eye
    width; ``left`` is the person's left), the mouth's opening (inner-lip gap / mouth width), the mouth's width and
    the brows' height above the eyes' corners (both in inter-ocular distances; y points down, so raised brows are
    larger)."""

    mouth_open: float
    eye_open_left: float
    eye_open_right: float
    mouth_width: float
    brow_height: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def control_measures(face: Face) -> ControlMeasures:
    """:class:`ControlMeasures` of a face with the 468/478-point mesh (ValueError otherwise)."""
    pts = np.asarray(face.landmarks, dtype=np.float64)[:, :2]
    if len(pts) < 468:
        raise ValueError(f"control measures need the 468/478-point mesh, got {len(pts)} landmarks")
    ocular = max(float(np.linalg.norm(pts[_OUTER_EYE_CORNERS[0]] - pts[_OUTER_EYE_CORNERS[1]])), 1e-6)
    right, left = _MESH["eyes"]
    brows = pts[list(_BROW_POINTS), 1].mean()
    eyes = pts[list(_EYE_CORNERS), 1].mean()
    return ControlMeasures(mouth_open=_ratio(pts, *_MESH["mouth"]), eye_open_left=_ratio(pts, *left),
                           eye_open_right=_ratio(pts, *right),
                           mouth_width=float(np.linalg.norm(pts[_MOUTH_CORNERS[0]] - pts[_MOUTH_CORNERS[1]]) / ocular),
                           brow_height=float((eyes - brows) / ocular))
