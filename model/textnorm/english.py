"""English written forms as words: numbers, amounts, times, symbols and common abbreviations.

espeak-ng would read some of these itself, but the model is trained on text whose characters the
frontend accepts (model/text.py `unsupported_chars`: letters, space and punctuation), so digits
and symbols must become words before they reach it. Number words come from num2words; this
module only decides which reading a written form takes (a year, an amount, a time, an ordinal),
and writes num2words' hyphens as spaces ("forty five": see `say`).

The readings, in the order they are tried at each number:

- amounts: "$5.50" -> "five dollars, fifty cents", "$1" -> "one dollar", "£3", "€20",
  "$2 million" -> "two million dollars";
- times: "10:30" -> "ten thirty", "9:05" -> "nine oh five", "10:00" -> "ten o'clock",
  "7 am" / "7:00 pm" -> "seven AM" / "seven PM" (espeak-ng spells capital AM and PM as letters);
- percentages: "45%" -> "forty five percent";
- ordinals: "1st", "22nd" -> "first", "twenty second";
- decades: "1990s" -> "nineteen nineties", "'80s" -> "eighties";
- ranges: "1914-1918" -> "nineteen fourteen to nineteen eighteen", "10-20" -> "ten to twenty";
- years: four digits without a thousands separator from 1100 to 2099 -> "nineteen ninety nine";
  English style puts a separator in counts of that size ("1,999 books") and never in years;
- decimals and versions: "3.14" -> "three point one four", "2.0.1" -> "two point zero point one";
- anything else: a cardinal ("-5" -> "minus five", "1,234" -> "one thousand, two hundred and
  thirty four"), or digit by digit for a leading zero or an identifier-length number.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

from model.textnorm.common import ascii_digits, digit_by_digit, is_identifier, set_apart

LANG = "en"


def say(n: int, to: str = "cardinal") -> str:
    """num2words' English reading of `n` (`to`: cardinal, ordinal, year), its hyphens as spaces:
    "ninety-nine" is one spoken word either way, but to the frontend a hyphen is punctuation, a
    symbol of its own in the middle of a number that a model trained on other text never saw."""
    return num2words(n, lang=LANG, to=to).replace("-", " ")


def cardinal(n: int) -> str:
    return say(n)


def _integer(written: str) -> str:
    """An integer as written (thousands separators allowed) as words."""
    digits = written.replace(",", "")
    if "," not in written and is_identifier(digits):
        return digit_by_digit(digits, cardinal)
    return cardinal(int(digits))


def _is_year(written: str) -> bool:
    """Four digits without a separator, in the span num2words reads as a year ("eleven hundred"
    to "twenty ninety nine"); 2000-2009 read the same either way ("two thousand and one")."""
    return len(written) == 4 and written.isdigit() and 1100 <= int(written) <= 2099


def _integer_or_year(written: str) -> str:
    return say(int(written), "year") if _is_year(written) else _integer(written)


def _decimal(whole: str, fractions: list[str]) -> str:
    """A decimal as words, "3.14" -> "three point one four": the digits after a point are read
    one by one (that is how a decimal is said, and "3.50" keeps its zero); further points
    ("2.0.1", a version) each say "point" again; no whole part (".5") -> "point five"."""
    words = [_integer(whole)] if whole else []
    for part in fractions:
        words += ["point", digit_by_digit(part, cardinal)]
    return " ".join(words)


def _plural(words: str) -> str:
    """The plural of a number's last word, for decades: "ninety" -> "nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


# Currency symbols written before an amount: (unit, units), (hundredth, hundredths). The names
# people say, not num2words' "pounds sterling" and invariable "euro".
CURRENCIES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
    "€": (("euro", "euros"), ("cent", "cents")),
}
SCALES = ("thousand", "million", "billion", "trillion")


def _amount(symbol: str, written: str, scale: str | None) -> str:
    """An amount after a currency symbol as words: "$5.50" -> "five dollars, fifty cents"
    (num2words' to="currency" form), "$1" -> "one dollar", "$0.25" -> "twenty five cents",
    "$2.5 million" -> "two point five million dollars"."""
    (unit, units), (cent, cents) = CURRENCIES[symbol]
    whole, _, fraction = written.replace(",", "").partition(".")
    if scale:
        return f"{_decimal(whole, [fraction] if fraction else [])} {scale} {units}"
    if len(fraction) > 2:  # "$0.005": a rate, not a sum of coins
        return f"{_decimal(whole, [fraction])} {units}"
    n_whole, n_cents = int(whole or "0"), int(fraction.ljust(2, "0")) if fraction else 0
    said = f"{cardinal(n_whole)} {unit if n_whole == 1 else units}"
    if n_cents == 0:
        return said
    said_cents = f"{cardinal(n_cents)} {cent if n_cents == 1 else cents}"
    return said_cents if n_whole == 0 else f"{said}, {said_cents}"


def _meridiem(written: str | None) -> str:
    return "" if not written else " AM" if written[0] in "aA" else " PM"


def _time(hour: int, minute: int, meridiem: str | None) -> str | None:
    """A clock time as words: "10:30" -> "ten thirty", "9:05" -> "nine oh five", "10:00" -> "ten
    o'clock", "18:00" -> "eighteen hundred", "7:00 pm" -> "seven PM"; None for a time that does
    not exist ("25:70")."""
    if hour > (12 if meridiem else 23) or minute > 59:
        return None
    said = cardinal(hour)
    if minute == 0:
        if not meridiem:
            said += " o'clock" if 1 <= hour <= 12 else " hundred"
    else:
        said += f" oh {cardinal(minute)}" if minute < 10 else f" {cardinal(minute)}"
    return said + _meridiem(meridiem)


_INT = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
_MERIDIEM = r"[AaPp]\.?[Mm]\.?(?!\w)"
# One pattern, its alternatives tried in order at each position: the first reading that fits a
# written form wins, and the digits it consumed are never looked at again (so the output, which
# has no digits, is left alone when spelled out twice).
_NUMBER = re.compile(
    rf"""
    (?P<cur_sign>(?<![\w-])-)?(?P<cur>[$£€])\s?(?P<cur_amount>{_INT}(?:\.\d+)?)
        (?:\s(?P<cur_scale>{"|".join(SCALES)})\b)?
    | (?P<hour>\d{{1,2}}):(?P<minute>\d{{2}})(?![\d:])(?:\s?(?P<meridiem>{_MERIDIEM}))?
    | (?P<bare_hour>1[0-2]|0?[1-9])\s?(?P<bare_meridiem>{_MERIDIEM})
    | (?P<pct_sign>(?<![\w-])-)?(?P<pct>{_INT}(?:\.\d+)?|\.\d+)\s?%
    | (?P<ordinal>{_INT})(?:st|nd|rd|th|ST|ND|RD|TH)(?!\w)
    | (?:(?<!\w)')?(?P<decade>\d0|\d{{3}}0)s(?!\w)
    | (?<![\w-])(?P<range_from>\d{{1,4}})-(?P<range_to>\d{{1,4}})(?![\w-])
    | (?P<sign>(?<![\w)\]])-)?(?P<whole>{_INT})(?P<fractions>(?:\.\d+)*)
    | (?<![\w.])(?P<point>(?:\.\d+)+)
    """,
    re.VERBOSE,
)


def _number(m: re.Match[str]) -> str:
    """The words of one written number `m` (a match of _NUMBER), set apart from its neighbours."""
    g = m.groupdict()
    if g["cur"]:
        words = _amount(g["cur"], g["cur_amount"], g["cur_scale"])
        words = f"minus {words}" if g["cur_sign"] else words
    elif g["hour"]:
        said = _time(int(g["hour"]), int(g["minute"]), g["meridiem"])
        # Not a clock ("25:70"): the two numbers with the colon between them.
        words = said if said is not None else f"{_integer(g['hour'])}:{_integer(g['minute'])}{_meridiem(g['meridiem'])}"
    elif g["bare_hour"]:
        words = cardinal(int(g["bare_hour"])) + _meridiem(g["bare_meridiem"])
    elif g["pct"]:
        whole, *fractions = g["pct"].split(".")
        words = f"{'minus ' if g['pct_sign'] else ''}{_decimal(whole, fractions)} percent"
    elif g["ordinal"]:
        words = say(int(g["ordinal"].replace(",", "")), "ordinal")
    elif g["decade"]:
        words = _plural(_integer_or_year(g["decade"]))
    elif g["range_from"]:
        words = f"{_integer_or_year(g['range_from'])} to {_integer_or_year(g['range_to'])}"
    elif g["whole"]:
        fractions = g["fractions"][1:].split(".") if g["fractions"] else []
        words = _decimal(g["whole"], fractions) if fractions else _integer_or_year(g["whole"])
        words = f"minus {words}" if g["sign"] else words
    else:
        words = _decimal("", g["point"][1:].split("."))
    return set_apart(words + _stop_after(m, g["meridiem"] or g["bare_meridiem"]), m.string, m.start(), m.end())


def _ends_sentence(text: str, end: int) -> bool:
    """Whether a full stop just before `end` also ends the sentence: the text ends there, or a
    capitalised word follows."""
    after = text[end:]
    return not after.strip() or bool(_NAME_AFTER.match(after))


def _stop_after(m: re.Match[str], meridiem: str | None) -> str:
    """The sentence's full stop when "a.m."/"p.m." took it: "at 7 p.m." -> "at seven PM."."""
    return "." if meridiem and meridiem.endswith(".") and _ends_sentence(m.string, m.end()) else ""


# Titles before a name: "Dr. Smith" -> "Doctor Smith". Written with or without the full stop
# (British English writes "Mr Smith"), but without it only when a capitalised name follows.
TITLES = {
    "Dr": "Doctor",
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Prof": "Professor",
    "St": "Saint",
    "Mt": "Mount",
}
# After a name they are places: "Baker St." -> "Baker Street", "Elm Dr." -> "Elm Drive".
PLACES = {"St": "Street", "Dr": "Drive", "Ave": "Avenue", "Rd": "Road"}
# A title that is neither before nor after a name: "the Dr." -> "the Doctor", "the St." -> "Street".
UNNAMED = {**TITLES, "St": "Street"}
# Abbreviations that may end a sentence: their full stop is also the sentence's when the text
# ends there or a capitalised word follows ("..., etc. Then").
ENDINGS = {"jr": "Junior", "sr": "Senior", "etc": "et cetera"}
# Abbreviations inside a sentence: their full stop is never the sentence's.
INNER = {"vs": "versus", "e.g": "for example", "i.e": "that is"}

_ABBREVIATION = re.compile(
    r"(?<![\w.])(?P<abbr>Mrs|Mr|Ms|Dr|Prof|St|Mt|Ave|Rd|Jr|Sr|etc|Etc|vs|Vs|[eE]\.g|[iI]\.e)(?P<stop>\.)?(?![\w.])"
)
_NAME_AFTER = re.compile(r"\s+[A-Z]")
_WORD_BEFORE = re.compile(r"(?<![\w'-])(?P<word>[A-Z][A-Za-z'-]*)\s+$")
# The text before a word that starts a sentence: nothing, or an end mark, closing quotes or
# brackets, spaces and opening ones.
_SENTENCE_START = re.compile(r"(?:^|[.!?:;][\"')\]]*)\s*[\"'(\[]*$")


def _after_a_name(text: str, start: int) -> bool:
    """Whether the word just before `start` is a name: capitalised, and not capitalised only
    because it starts a sentence ("In St. Louis", "Visit Dr. Smith") nor the pronoun I."""
    m = _WORD_BEFORE.search(text, 0, start)
    if m is None or m.group("word") == "I":
        return False
    return not _SENTENCE_START.search(text, 0, m.start())


def _capitalised(words: str, written: str) -> str:
    return words[0].upper() + words[1:] if written[0].isupper() else words


def _abbreviation(m: re.Match[str]) -> str:
    """The words of one abbreviation `m` (a match of _ABBREVIATION), keeping its full stop where
    it also ends the sentence: "I saw the Dr." -> "I saw the Doctor.", but "Dr. Smith" -> "Doctor
    Smith" (a stop kept there would be heard as the end of a sentence)."""
    abbr, stop, text = m.group("abbr"), m.group("stop"), m.string
    name_follows = bool(_NAME_AFTER.match(text, m.end()))
    sentence_ends = bool(stop) and _ends_sentence(text, m.end())
    if abbr in PLACES and _after_a_name(text, m.start()):
        return PLACES[abbr] + ("." if sentence_ends else "")
    if abbr in TITLES and name_follows:
        return TITLES[abbr]
    if abbr in UNNAMED:
        # Without a stop and without a name around it, "Dr" or "St" may be anything (a word
        # in capitals, a code): left as written.
        return UNNAMED[abbr] + ("." if sentence_ends else "") if stop else m.group(0)
    key = abbr.lower()
    if key in ENDINGS:
        return _capitalised(ENDINGS[key], abbr) + ("." if sentence_ends else "")
    if key in INNER and (stop or key == "vs"):
        return _capitalised(INNER[key], abbr)
    return m.group(0)


# Symbols said as words. "#" and "No." only before a number ("#1", "No. 5"), where they mean it.
_BEFORE_NUMBERS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"&"), " and "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"="), " equals "),
    (re.compile(r"@"), " at "),
    (re.compile(r"#\s?(?=\d)"), " number "),
    (re.compile(r"\b(?P<no>[Nn])o\.\s?(?=\d)"), lambda m: "Number " if m.group("no") == "N" else "number "),
]
# A percent sign after a number is read with it ("45%"); one left over ("% of them") is a word.
_PERCENT = re.compile(r"%")
_MINUS = str.maketrans({"\u2212": "-"})  # the typographic minus sign


def spell_out(text: str) -> str:
    """English `text` with numbers, amounts, times, symbols and abbreviations as words.

    Expects tidied text (model.text.normalize_text); may leave doubled spaces for the caller's
    final tidy. Text already spelled out comes back unchanged.
    """
    text = ascii_digits(text).translate(_MINUS)
    for pattern, words in _BEFORE_NUMBERS:
        text = pattern.sub(words, text)
    text = _PERCENT.sub(" percent ", _NUMBER.sub(_number, text))
    # Abbreviations last: a number written against one ("2Dr.") is set apart from it first.
    return _ABBREVIATION.sub(_abbreviation, text)
