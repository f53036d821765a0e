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
