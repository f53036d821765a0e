"""``mmfa-studio bench``: per-stage model timings for both variants on this device (``mmfa_studio/timing.py``).

``--json FILE`` writes ``{"benchmark": "stages", "machine": …, "results": [...]}``, the layout of the checkout's
``benchmarks/`` JSON, so ``benchmarks/readme_table.py`` reads it beside theirs.
"""

from __future__ import annotations

import argparse
import json

from ..atomic import write_text_atomic
from .options import int_in


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="time each stage of a re-render (both variants, fp32 and reduced precision)")
    p.add_argument("--config", default="cpu", help="model config whose sizes are timed (default: cpu)")
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cpu, cuda, …")
    p.add_argument("--variant", choices=["hybrid", "volumetric", "both"], default="both")
    p.add_argument("--repeats", type=int_in(1, 100_000), default=20)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..model.config import resolve_config_path
    from ..runtime import describe_machine
    from ..timing import format_table, results_json, run_benchmarks
    from . import UserError

    try:
        resolve_config_path(args.config)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    from ..engine import EngineError, resolve_device

    try:  # refuse an unknown or absent device in one line, not a torch traceback mid-run
        device = resolve_device(args.device)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    if args.json:  # checked now: the benchmark takes minutes, and its figures would be lost at the end
        from .render import check_writable

        check_writable(args.json, "--json")
    variants = ("hybrid", "volumetric") if args.variant == "both" else (args.variant,)
    results = run_benchmarks(args.config, device, variants, repeats=args.repeats)
    machine = describe_machine()
    print(format_table(results))
    print(f"load average {machine['load_average']['1min']} on {machine['cores_available']} cores, "
          f"commit {machine['git_commit']}")
    if args.json:
        report = {"benchmark": "stages", "machine": machine, "results": results_json(results)}
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0

