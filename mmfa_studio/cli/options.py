"""Argument types that bound every number a command takes, where it enters (argparse), so that no NaN, no
20-digit integer and no crop side of 100 000 pixels reaches the code behind it: each is one line, exit 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

# Seeds go to torch.Generator.manual_seed, which takes 64 bits; a seed is a name, 32 bits are plenty.
MAX_SEED = 2**32 - 1
# The largest crop side `crop` writes: 4096² RGB is 48 MB in memory, a PNG of at most that on disk.
MAX_CROP_SIZE = 4096


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{_short(text)} is out of range [{low}, {high}]")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def float_in(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number within [low, high] (or (low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{_short(text)} is not a finite number")
        if value < low or value > high or (low_open and value == low):
            lo = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{_short(text)} is out of range {lo}{low:g}, {high:g}]")
        return value

    parse.__name__ = "number"
    return parse


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "…"


seed = int_in(0, MAX_SEED)
