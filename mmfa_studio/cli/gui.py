"""``mmfa-studio gui [PHOTO]``: the desktop app (also what ``mmfa-studio`` with no command opens)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import UserError


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("gui", help="open the desktop app (the default command)",
                                   description="Open MMFA Studio. The model and the photo load in the background.")
    parser.add_argument("photo", nargs="?", help="a portrait to open (default: the bundled sample portrait)")
    parser.add_argument("--checkpoint", help="a model checkpoint (.safetensors); default: the bundled model")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs (auto: cuda, then mps, then cpu)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.photo and not Path(args.photo).is_file():
        raise UserError(f"photo {args.photo} does not exist")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint {args.checkpoint} does not exist")
    from mmfa_studio.app.main import display_problem, run_app

    problem = display_problem()
    if problem:
        raise UserError(problem)
    return run_app(args.photo, args.checkpoint, args.device)
