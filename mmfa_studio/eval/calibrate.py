"""Measure how far the rendered head turns for each model angle, and fit a :class:`PoseCalibration` from it.

The sources are the first and last frames of each clip of a folder (cropped as ``evaluate`` crops them); each
is rendered at model-relative turns of ±``angles`` on every axis, uncalibrated, and the face tracker measures
the turn against the zero-edit render. The median over sources, per angle, is the response that
:meth:`PoseCalibration.fit` inverts. Measure on clips of your own, not the ones you evaluate on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import Engine, ModelMotion, VideoError
from ..engine.calibration import AXES, PoseCalibration
from .evaluate import crop_clip, read_spread_frames

# Model angles measured, per axis; the largest is the farthest a calibrated edit turns the keypoints. Yaw and
# pitch turn the head out of the image plane, which the 2D warp carries only so far (with flow smoothing, renders
# stay whole to 30°; the model card has the identity figures). Roll turns it within the plane, which the warp
# carries to any angle.
CALIBRATION_ANGLES: dict[str, tuple[float, ...]] = {
    "yaw": (5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "pitch": (5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "roll": (5.0, 10.0, 15.0, 20.0, 30.0, 40.0),
}
MIN_SOURCES = 3  # an angle measured on fewer sources (the tracker lost the face) is left out


@dataclass
class PoseResponse:
    measured: dict[str, dict[float, float]]  # axis → model angle (°) → median measured turn (°)
    sources: int

    def fit(self) -> PoseCalibration:
        return PoseCalibration.fit(self.measured)


def measure_pose_response(engine: Engine, videos: Iterable[Path],
                          angles: Mapping[str, Sequence[float]] = CALIBRATION_ANGLES) -> PoseResponse:
    """The median tracker-measured turn per axis and model angle (``angles``: axis → positive angles, each
    measured both ways) over the first and last frames of ``videos``."""
    edits = [(axis, sign * float(a)) for axis in AXES for a in angles.get(axis, ()) for sign in (-1, 1)]
    turns: dict[tuple[str, float], list[float]] = {edit: [] for edit in edits}
    sources = 0
    for path in videos:
        try:
            crops = crop_clip(engine, read_spread_frames(path, 1))
        except VideoError:
            continue
        if crops is None:
            continue
        for crop in [crops.source, *crops.driving[-1:]]:
            source = engine.prepare_crop(crop, name=path.name)
            reference = _pose(engine, engine.render(source, ModelMotion()).crop)
            if reference is None:
                continue
            sources += 1
            edited = [ModelMotion(**{axis: deg}) for axis, deg in edits]  # model angles: what is measured
            rendered = engine.render_batch(source, edited)
            for (axis, deg), frame in zip(edits, rendered):
                pose = _pose(engine, frame.crop)
                if pose is not None:
                    turns[(axis, deg)].append(getattr(pose, axis) - getattr(reference, axis))
    measured = {axis: {deg: float(np.median(turns[(a, deg)])) for a, deg in edits
                       if a == axis and len(turns[(a, deg)]) >= MIN_SOURCES} for axis in AXES}
    return PoseResponse(measured=measured, sources=sources)


def _pose(engine: Engine, crop: np.ndarray):
    faces = engine.tracker.detect(crop)
    return faces[0].pose if faces and faces[0].pose is not None else None
