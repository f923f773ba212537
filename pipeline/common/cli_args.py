"""Argument types the commands' parsers share: numbers that must be positive, or at least zero.

argparse calls a type with the option's text and turns its `ArgumentTypeError` into a usage
error (`hamgara synth: error: argument --batch-size: '0' is not a positive whole number`,
exit 2). So a value no run can use is refused before anything loads, instead of surfacing
later as whatever the code it reaches says of it (`range() arg 3 must not be zero`).
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number of 1 or more (a count, a size)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of 0 or more (a count where 0 means none, or all)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of 0 or more (an amount where 0 means none)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of 0 or more")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a scale, a rate)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # nan (false in every comparison) and inf are no scale either.
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value
