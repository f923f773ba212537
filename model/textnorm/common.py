"""What every language's normalizer needs: digits of any script as ASCII, a number read digit by
digit, and spoken words set apart from the letters they were written against."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

# An integer written with more digits than this, and without thousands separators, is an
# identifier (a card, an account, a serial number) rather than a quantity: nobody says
# "twelve quintillion ..." aloud, and num2words refuses numbers past its largest scale word.
MAX_QUANTITY_DIGITS = 15


def ascii_digits(text: str) -> str:
    """Every digit character (Persian ۰-۹, Arabic-Indic ٠-٩, superscripts, any other script's) as
    its ASCII digit, so one set of patterns reads numbers however a keyboard wrote them."""
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() and not ch.isascii() else ch for ch in text)


def digit_by_digit(digits: str, say: Callable[[int], str]) -> str:
    """Each digit as its own word ("007" -> "zero zero seven"): how codes, leading-zero numbers
    and numbers too long to be quantities are read aloud."""
    return " ".join(say(int(d)) for d in digits)


def is_identifier(digits: str) -> bool:
    """Whether a digit string (no separators) is read digit by digit: a leading zero ("007",
    "0912...") or more digits than a quantity has."""
    return (len(digits) > 1 and digits[0] == "0") or len(digits) > MAX_QUANTITY_DIGITS


def set_apart(words: str, text: str, start: int, end: int) -> str:
    """`words` (what text[start:end] is spoken as) with a space on each side that touches a
    letter or digit, so "MP3" becomes "MP three" rather than one unpronounceable word."""
    before = " " if start > 0 and text[start - 1].isalnum() else ""
    after = " " if end < len(text) and text[end].isalnum() else ""
    return f"{before}{words}{after}"
