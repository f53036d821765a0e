"""What every benchmark shares: the checkout's paths, the JSON it prints (a machine header beside the results)
and where saved results go."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

from mmfa_studio.assets import SHARED_DATA  # noqa: F401 - the benchmarks' one view of where shared data is
from mmfa_studio.runtime import configure_threads, describe_machine

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def say(*parts: object) -> None:
    """A progress or summary line for the reader (stderr: stdout carries the JSON)."""
    print(*parts, file=sys.stderr, flush=True)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options plus ``--save``; sizes the thread pools first, as every entry point does."""
    parser.add_argument("--save", action="store_true",
                        help=f"also write the JSON to {RESULTS_DIR.relative_to(REPO_ROOT)}/")
    configure_threads()
    return parser.parse_args(argv)


def _finite(value: object) -> object:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def emit(name: str, results: dict[str, object], save: bool) -> dict[str, object]:
    """Print ``{"benchmark", "machine", "results"}`` on stdout (and save it with ``--save``); returns it."""
    report = _finite({"benchmark": name, "machine": describe_machine(), "results": results})
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if save:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{name}-{stamp}.json"
        path.write_text(text + "\n")
        say(f"saved {path.relative_to(REPO_ROOT)}")
    return report
