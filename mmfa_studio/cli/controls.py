"""``mmfa-studio controls``: the named expression controls of a checkpoint and their ranges."""

from __future__ import annotations

import argparse
import json

from . import UserError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("controls", help="list the model's named expression controls (for render --control)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..checkpoint import BUNDLED_MODEL, CheckpointError, read_info
    from ..motion import CONTROLS_KEY, ExpressionControls

    try:
        info = read_info(args.checkpoint or BUNDLED_MODEL)
        data = info.metadata.get(CONTROLS_KEY)
        controls = None if data is None else ExpressionControls.from_json(data)
    except (CheckpointError, ValueError) as exc:
        raise UserError(str(exc)) from None
    names = [] if controls is None else list(controls.directions)
    if args.json:
        print(json.dumps({"checkpoint": str(info.path), "controls": [
            {"name": n, "min": controls.range(n)[0], "max": controls.range(n)[1]} for n in names]}, indent=2))
        return 0
    if not names:
        print(f"{info.path} has no named expression controls (`mmfa-studio fit-expression` adds them)")
        return 0
    print(f"named expression controls of {info.path} (0 = none, 1 = the training data's strongest):")
    for n in names:
        low, high = controls.range(n)
        print(f"  {n:<12} {low:g} … {high:g}")
    return 0
