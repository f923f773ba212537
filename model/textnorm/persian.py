"""Persian written forms as words: Arabic letter forms, and numbers in any of three digit sets.

Persian text typed on an Arabic keyboard, or copied from Arabic sources, carries Arabic yeh
(ي U+064A), kaf (ك U+0643) and alef maksura (ى U+0649) where Persian writes ی (U+06CC) and
ک (U+06A9). They look alike but are different symbols to the frontend: left alone, one word would
be two words to the model. Numbers are written with Persian digits (۰-۹), Arabic-Indic digits
(٠-٩) or ASCII digits, with ٫ (or ".") as the decimal separator and ٬ (or ",") between thousands;
num2words reads them ("۱۴۰۲" -> "هزار و چهارصد و دو", "۳٫۵" -> "سه و نیم"). A percent sign (٪ or %)
after a number is "درصد". The zero-width non-joiner (U+200C) is part of Persian spelling and is
kept as written.
"""

from __future__ import annotations

import re
from decimal import Decimal

from num2words.lang_FA import Num2Word_FA, farsiFrac, farsiFracBig

from model.textnorm.common import ascii_digits, digit_by_digit, is_identifier, set_apart

_LETTERS = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9", "\u2212": "-"})
PERCENT = "درصد"


class _PersianNumbers(Num2Word_FA):
    """num2words' Persian (0.5.14), with its fraction reading fixed: it says "نیم" (a half) for
    any fraction whose digits are 5, so 0.05 would be read as 0.5; a half is only 0.5."""

    def fractional(self, number: int, level: int) -> str:
        if number == 5 and level > 1:
            tens, thousands = level % 3, level // 3
            return f"{self.cardinalPos(number)} {farsiFrac[tens]} {farsiFracBig[thousands]}".strip()
        return super().fractional(number, level)


_NUMBERS = _PersianNumbers()


def cardinal(n: int | Decimal) -> str:
    return _NUMBERS.to_cardinal(n)


def _number_words(whole: str, fraction: str | None) -> str:
    """A written number, its thousands separators removed, as words: "3" -> "سه", "3.14" -> "سه و
    چهارده صدم"; a leading zero or an identifier's length is read digit by digit (a phone number)."""
    if fraction is None and is_identifier(whole):
        return digit_by_digit(whole, cardinal)
    # Decimal, not float: "0.1" stays exactly one tenth, so the fraction's level is the written one.
    return cardinal(Decimal(f"{whole}.{fraction}") if fraction else int(whole))


_NUMBER = re.compile(
    r"(?P<sign>(?<![\w)\]])-)?"
    r"(?P<whole>\d{1,3}(?:[,\u066c]\d{3})+(?!\d)|\d+)(?:[.\u066b](?P<fraction>\d+))?"
    r"(?P<percent>\s?[%\u066a])?"
)


def _number(m: re.Match[str]) -> str:
    words = _number_words(re.sub(r"[,\u066c]", "", m.group("whole")), m.group("fraction"))
    if m.group("sign"):
        words = f"منفی {words}"
    if m.group("percent"):
        words = f"{words} {PERCENT}"
    return set_apart(words, m.string, m.start(), m.end())


# A percent sign after a number is read with it; one left over ("٪ آنها") is the word.
_PERCENT = re.compile(r"[%\u066a]")


def spell_out(text: str) -> str:
    """Persian `text` with Persian letter forms and its numbers as words; expects tidied text
    (model.text.normalize_text). Text already spelled out comes back unchanged."""
    text = _NUMBER.sub(_number, ascii_digits(text.translate(_LETTERS)))
    return _PERCENT.sub(f" {PERCENT} ", text)
