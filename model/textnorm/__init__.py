"""Text as written -> text as spoken, per language: numbers, amounts, symbols and abbreviations
become words before the text frontend (model/text.py) sees them.

The frontend refuses digits (`unsupported_chars`) because how a number is read depends on the
language and on what it counts; this package is where that reading is decided, once, for every
place that speaks text a person typed: `hamgara synth`, and corpus rows whose `normalized_text`
is empty (validate spells their `text` out and lists what it became in reports/warnings.csv).
A transcript given in `normalized_text` is never changed.

Torch-free on purpose, like model/text.py: the exported voice's runtime imports it without torch.
"""

from __future__ import annotations

from collections.abc import Callable

from model.text import normalize_text
from model.textnorm import english, persian

# The espeak-ng language family (the voice name before its first "-") -> its normalizer. "en-us",
# "en-gb" and "en" share English's; "fa" is Persian.
SPELLERS: dict[str, Callable[[str], str]] = {"en": english.spell_out, "fa": persian.spell_out}
# Voices of a family written in another script: "fa-latn" is Persian in Latin letters, where
# Persian number words (in Arabic script) would be the wrong script.
OTHER_SCRIPTS = frozenset({"fa-latn"})


def speller(language: str) -> Callable[[str], str] | None:
    """The normalizer of an espeak-ng language code, or None for a language without one."""
    code = language.strip().lower()
    if code in OTHER_SCRIPTS:
        return None
    return SPELLERS.get(code.split("-")[0])


def spell_out(text: str, language: str) -> str:
    """`text` tidied (model.text.normalize_text) with its numbers, amounts, symbols and
    abbreviations spelled out as words of `language` (an espeak-ng voice name: "en-us", "en",
    "en-gb", "fa").

    A language without a normalizer gets the tidying only: its digits are left in place, for the
    frontend's unsupported-characters error to name, rather than read in a language they are not.
    Spelling out spelled-out text changes nothing.
    """
    tidy = normalize_text(text)
    spell = speller(language)
    return tidy if spell is None else normalize_text(spell(tidy))
