"""``mmfa-studio evaluate``: reconstruction, pose-control, disentanglement and identity metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UserError
from .options import int_in


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="metrics of a checkpoint over a folder of talking-face videos")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    p.add_argument("--data", required=True, help="folder of raw talking-face videos")
    p.add_argument("--clips", help="text file listing which videos of --data to use (one name per line)")
    p.add_argument("--frames", type=int_in(1, 100_000), default=24, help="driving frames per clip (default 24)")
    p.add_argument("--motion", choices=("tracker", "model"), default="tracker",
                   help="how each driving frame's motion is read: as reenactment does (tracker: turns, shift, zoom and "
                        "landmark movement from the face tracker, expression latent from the model; default) or by the "
                        "model alone (the paper)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="fp32 (default, comparable figures), bf16, fp16, auto")
    p.add_argument("--json", metavar="OUT", help="write the full report (overall, baseline, per clip) as JSON")
    p.set_defaults(func=run, writes=("json",), reads={"clips": "clip list", "checkpoint": "checkpoint"})
    return p


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4f}"


def run(args) -> int:
    from ..atomic import write_text_atomic
    from ..engine import Engine, EngineError
    from ..eval.evaluate import KEYS, RECON_KEYS, EvalSettings, evaluate_videos, list_videos

    if args.json:  # checked now: an evaluation takes minutes, and its report would be lost at the end
        from .render import check_writable

        check_writable(args.json, "--json")
    try:
        videos = list_videos(Path(args.data))
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if args.clips:
        try:
            lines = Path(args.clips).read_text().splitlines()
            wanted = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
        except OSError as exc:
            raise UserError(f"cannot read {args.clips}: {exc.strerror}") from None
        videos = [v for v in videos if v.name in wanted]
        if not videos:
            raise UserError(f"none of the clips listed in {args.clips} is in {args.data}")
    try:
        engine = Engine.load(args.checkpoint, device=args.device, precision=args.precision, output_size=None)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    from tqdm import tqdm

    bar = tqdm(videos, desc="evaluate", unit="clip", file=sys.stderr)
    report = evaluate_videos(engine, bar, EvalSettings(frames_per_clip=args.frames, motion=args.motion))
    report["checkpoint"] = str(engine.info.path) if engine.info else None
    # pose edits go through the checkpoint's calibration (engine/calibration.py); None: taken as model angles
    report["pose_calibration"] = None if engine.pose_calibration.is_identity else engine.pose_calibration.to_dict()
    print(f"{'clip':<44}{'frames':>7}" + "".join(f"{k:>16}" for k in KEYS))
    for row in report["per_clip"]:
        print(f"{row['clip'][:43]:<44}{row['frames']:>7}" + "".join(f"{_fmt(row.get(k)):>16}" for k in KEYS))
    print(f"{'OVERALL (model)':<44}{report['frames']:>7}" + "".join(f"{_fmt(report[k]):>16}" for k in KEYS))
    base = report["baseline_copy_source"]
    print(f"{'OVERALL (copy the source)':<44}{report['frames']:>7}"
          + "".join(f"{_fmt(base.get(k)):>16}" for k in RECON_KEYS))
    follow = report["expression_following"]
    print("expression following (output vs driver change since the source; copying: gain 0): "
          + ", ".join(f"{part} r {_fmt(f['r'])} gain {_fmt(f['gain'])} over {f['frames']} frames"
                      for part, f in follow.items()))
    photo, copy_photo = report["expression_from_photo"], report["expression_from_photo"]["baseline_copy_source"]
    print(f"expression from a photo ({photo['clips']} clips; median relative error against the photo): mouth "
          f"{_fmt(photo['mouth_open_relative_error'])} (copy {_fmt(copy_photo['mouth_open_relative_error'])}), eyes "
          f"{_fmt(photo['eye_open_relative_error'])} (copy {_fmt(copy_photo['eye_open_relative_error'])})")
    turns = report["large_turn"]
    if turns["frames"]:
        copy = turns["baseline_copy_source"]
        print(f"large turns (≥ 12° from the most frontal frame; {turns['frames']} frames of {turns['clips']} clips): "
              f"L1 {_fmt(turns['l1'])} (copy {_fmt(copy['l1'])}), LPIPS {_fmt(turns['lpips'])} (copy "
              f"{_fmt(copy['lpips'])}), AED {_fmt(turns['aed'])} (copy {_fmt(copy['aed'])})")
    else:
        print("large turns: no frame turned ≥ 12° from the most frontal one")
    if report["named_controls"]:
        print("named controls on the clips' sources (median change against the zero edit; mouth width relative):")
        for key, row in report["named_controls"].items():
            print(f"  {key:<14}" + ", ".join(f"{m} {v:+.3f}" for m, v in row["change"].items())
                  + f"; turn {row['turn_deg']:.2f}°, identity {_fmt(row['identity_cosine'])} ({row['clips']} clips)")
    for key, reason in report["unavailable"].items():
        print(f"{key}: null — {reason}")
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0
