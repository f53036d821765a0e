"""``mmfa-studio calibrate``: measure how far a checkpoint's renders turn, and store the pose calibration that
makes a commanded edit turn the face that many degrees (``engine/calibration.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UserError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("calibrate", help="measure a checkpoint's pose response and store its pose calibration")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    p.add_argument("--data", required=True,
                   help="folder of talking-face videos (clips of your own: not the ones you evaluate on)")
    p.add_argument("--out", required=True, help="where to write the calibrated checkpoint (may be --checkpoint)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16, fp16, auto")
    p.add_argument("--json", action="store_true", help="print the response and the calibration as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..assets import BUNDLED_MODEL
    from ..checkpoint import CheckpointError, save_with_metadata
    from ..engine.calibration import AXES, METADATA_KEY
    from ..eval.calibrate import measure_pose_response
    from ..eval.evaluate import list_videos
    from .render import check_writable, open_engine

    check_writable(args.out, "--out")  # before minutes of measuring
    try:
        videos = list_videos(Path(args.data))
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    engine = open_engine(args)
    from tqdm import tqdm

    response = measure_pose_response(engine, tqdm(videos, desc="calibrate", unit="clip", file=sys.stderr))
    if response.sources == 0:
        raise UserError(f"no face found in the videos of {args.data}")
    try:
        calibration = response.fit()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    table = calibration.to_dict()
    response_json = {axis: {f"{deg:g}": turn for deg, turn in measured.items()}
                     for axis, measured in response.measured.items()}
    try:
        save_with_metadata(args.checkpoint or BUNDLED_MODEL, args.out,
                           {METADATA_KEY: table, "pose_response": response_json,
                            "pose_calibration_clips": [v.name for v in videos]})
    except (CheckpointError, OSError) as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from None
    if args.json:
        print(json.dumps({"sources": response.sources, "response": response_json, METADATA_KEY: table}, indent=2))
        return 0
    print(f"pose response over {response.sources} sources (model angle → measured turn, median):")
    for axis, measured in response.measured.items():
        print(f"  {axis:<6}" + "  ".join(f"{deg:+g}→{turn:+.1f}" for deg, turn in sorted(measured.items())))
    for axis in AXES:
        low, high = calibration.reach(axis)
        print(f"{axis} reach {low:+.1f}° … {high:+.1f}° (model {table[axis][0][1]:+g}° … {table[axis][-1][1]:+g}°)")
    print(f"wrote {args.out}")
    return 0
