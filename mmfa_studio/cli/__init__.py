"""``mmfa-studio`` command line. Each subcommand lives in its own module of this package and exposes

    register(subparsers) -> argparse.ArgumentParser   # adds its parser; sets defaults(func=run, reads=…, writes=…)
    run(args) -> int                                  # exit code

Exit codes: 0 ok, 2 bad input or usage (UserError, and argparse's own errors), 1 internal error, 128 + N when
stopped by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129). Errors print one line, no traceback (set
MMFA_DEBUG=1 to see it).

Checks every command gets here, where the input enters, rather than one copy per command:

* ``reads`` / ``writes`` (set as parser defaults: ``{dest: "what it is"}``): an output that is the same file as
  one of the inputs (through a symlink, a hard link or another spelling of the path) is refused before
  anything is read, so no command can replace its own input.
* a SIGTERM or SIGHUP unwinds like Ctrl-C (``atomic.unwind_on_signals``), so an export being written is
  removed, not left as ``.NAME.XXXX.part.mp4``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from ..runtime import configure_threads

# Subcommand modules, in the order --help lists them. With no subcommand the GUI starts.
COMMANDS = ("gui", "render", "animate", "reenact", "live", "interpolate", "crop", "prepare", "train", "evaluate",
            "calibrate", "fit-expression", "controls", "bench")


class UserError(Exception):
    """Bad input or usage: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage block is what --help is for), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        # "argument -o/--output: 4 is out of range [0, 1]" (the bounds of cli/options.py) → "--output 4 is …"
        match = re.fullmatch(r"argument ([^:]+): (.*)", message, re.DOTALL)
        if match and re.match(r"\S+ is (out of range|not an integer|not a number|not a finite number)", match[2]):
            message = f"{match[1].split('/')[-1]} {match[2]}"
        message = one_line(message)
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmfa-studio",
        description="Controllable one-shot face animation (MMFA). With no command, opens the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are _Parser too
    for name in COMMANDS:
        module_name = f"{__name__}.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def one_line(text: str, limit: int = 1000) -> str:
    """A message as one line of sane length, whatever a file name or a value in it held (newlines, escapes)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing file (symlinks, hard links, ``./a`` vs ``a`` …)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either does not exist (nothing to overwrite), or is no path at all
        return False


def check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """The one check that no output of a command is one of its inputs (data loss: ``render a.jpg -o a.jpg``)."""
    for out_dest in getattr(args, "writes", {}):
        output = getattr(args, out_dest, None)
        if not output:
            continue
        for in_dest, what in getattr(args, "reads", {}).items():
            value = getattr(args, in_dest, None)
            if value and same_file(output, value):
                option = "-o" if out_dest == "output" else f"--{out_dest.replace('_', '-')}"
                raise UserError(f"{option} {output} is the {what}: it would be overwritten; write to another file")


def main(argv: list[str] | None = None) -> int:
    configure_threads()
    from ..atomic import Terminated, unwind_on_signals

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["gui", *argv]
    if any("\0" in a for a in argv):  # cannot come from a shell; from a script it would reach os.stat as ValueError
        print("mmfa-studio: error: an argument holds a NUL byte", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error is returned as 2 like any other bad input; --help still exits
        if exc.code:
            return 2
        raise
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        check_outputs_are_not_inputs(args)
        if args.command == "gui":  # Qt's event loop runs no Python signal handler while idle: leave it the default
            return int(args.func(args) or 0)
        with unwind_on_signals():
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mmfa-studio {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"mmfa-studio {args.command}: stopped by {exc.name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"mmfa-studio {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place that turns crashes into a clean exit
        if os.environ.get("MMFA_DEBUG"):
            raise
        print(f"mmfa-studio {args.command}: internal error: {type(exc).__name__}: {one_line(str(exc))} "
              "(MMFA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
