"""Argument types the commands' parsers share: numbers that must be positive, or at least zero.

argparse calls a type with the option's text and turns its `ArgumentTypeError` into a usage
error (`hamgara synth: error: argument --batch-size: '0' is not a positive whole number`,
exit 2). So a value no run can use is refused before anything loads, instead of surfacing
later as whatever the code it reaches says of it (`range() arg 3 must not be zero`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _number(text: str, parse: Callable[[str], N], allowed: Callable[[N], bool], what: str) -> N:
    """`text` read by `parse` when that succeeds and `allowed` holds of the value; else the
    usage error "'<text>' is not <what>"."""
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not allowed(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    """A whole number of 1 or more (a count, a size)."""
    return _number(text, int, lambda v: v >= 1, "a positive whole number")


def non_negative_int(text: str) -> int:
    """A whole number of 0 or more (a count where 0 means none, or all)."""
    return _number(text, int, lambda v: v >= 0, "a whole number of 0 or more")


def non_negative_float(text: str) -> float:
    """A finite number of 0 or more (an amount where 0 means none)."""
    # nan (false in every comparison) and inf are no amount either.
    return _number(text, float, lambda v: v >= 0 and math.isfinite(v), "a number of 0 or more")


def positive_float(text: str) -> float:
    """A finite number above 0 (a scale, a rate)."""
    return _number(text, float, lambda v: v > 0 and math.isfinite(v), "a positive number")
