"""How closely a reenacted head follows the driver's turns, with head turns read by the tracker or by the model.

    .venv/bin/python experiments/pose_following.py VIDEO_FOLDER [--checkpoint CKPT] [--frames 16]

Each video drives its own first frame (relative mode, no smoothing). The face tracker measures the driving frames'
yaw/pitch/roll change since the first frame and the rendered head's change since the zero-edit render; the figure
is their mean absolute difference per axis, in degrees. Not moving at all scores the driver's own mean |change|,
printed beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mmfa_studio.engine import Engine, Motion, Reenactor
from mmfa_studio.eval.evaluate import list_videos, read_spread_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    engine = Engine.load(args.checkpoint, precision="fp32", output_size=None)  # the model's crops only
    errors: dict[str, list[np.ndarray]] = {"tracker": [], "model": []}
    still: list[np.ndarray] = []

    def tracked(image: np.ndarray) -> np.ndarray:
        faces = engine.tracker.detect(image)
        return faces[0].pose.as_array() if faces and faces[0].pose is not None else np.full(3, np.nan)

    for video in list_videos(args.folder):
        frames = read_spread_frames(video, args.frames)
        source = engine.prepare_source(frames[0])
        rest = tracked(engine.render(source, Motion()).crop)
        driver = np.array([tracked(f) for f in frames])
        change = (driver - driver[0])[1:]
        still.append(np.abs(change))
        line = [f"{video.name[:32]:<33} driver |change| {np.nanmean(np.abs(change), 0).round(1)}"]
        for pose_from, errs in errors.items():
            with Reenactor(engine, source, smoothing=None, pose_from=pose_from) as reenactor:
                rendered = [reenactor.process(f).frame.crop for f in frames]
            error = np.abs(np.array([tracked(r) - rest for r in rendered])[1:] - change)
            errs.append(error)
            line.append(f"{pose_from} {np.nanmean(error, 0).round(1)}")
        print("  ".join(line), flush=True)
    print(f"overall (yaw, pitch, roll °): not moving {np.nanmean(np.concatenate(still), 0).round(2)}  "
          + "  ".join(f"{k} {np.nanmean(np.concatenate(v), 0).round(2)}" for k, v in errors.items()))


if __name__ == "__main__":
    main()
