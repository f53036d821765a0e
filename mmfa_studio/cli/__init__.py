"""``mmfa-studio`` command line. Each subcommand lives in its own module of this package and exposes

    register(subparsers) -> argparse.ArgumentParser   # adds its parser; sets defaults(func=run)
    run(args) -> int                                  # exit code

Exit codes: 0 ok, 2 bad input or usage (UserError), 1 internal error. Errors print one line, no traceback
(set MMFA_DEBUG=1 to see it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand modules, in the order --help lists them. With no subcommand the GUI starts.
COMMANDS = ("gui", "render", "animate", "reenact", "live", "interpolate", "crop", "prepare", "train", "evaluate", "calibrate", "bench")


class UserError(Exception):
    """Bad input or usage: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfa-studio",
        description="Controllable one-shot face animation (MMFA). With no command, opens the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mmfa-studio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmfa-studio {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into a clean exit
        if os.environ.get("MMFA_DEBUG"):
            raise
        print(f"mmfa-studio {args.command}: internal error: {type(exc).__name__}: {exc} (MMFA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
