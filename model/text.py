"""The text frontend: normalized text -> symbols (phonemes or characters) -> ids.

Phonemes come from espeak-ng through `phonemizer`, with stress marks and punctuation kept:
punctuation carries prosody (pauses, question intonation) and word boundaries are kept as a
space symbol, so the aligner and the model see where words end. The character frontend is
the fallback for languages espeak-ng voices poorly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from model.config import WORD_SEPARATOR

PAD = "_"
_STRESS = "ˈˌ"  # attached to the following phone: a stressed vowel is its own symbol
_LENGTH = "ːˑ"  # attached to the preceding phone
# Punctuation kept as symbols; Persian/Arabic comma, semicolon and question mark included.
PUNCTUATION = ",.?!;:-\"'()«»،؛؟…"
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\u00a0": " "})
_SPACES = re.compile(r"\s+")
_ZWNJ = "\u200c"  # Persian zero-width non-joiner is part of the written word


class FrontendError(ValueError):
    """Text that the frontend cannot turn into symbols."""


def normalize_text(text: str) -> str:
    """Unicode NFC, typographic quotes and dashes to ASCII, whitespace collapsed, trimmed."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    return _SPACES.sub(" ", text).strip()


def _char_allowed(ch: str, language: str) -> bool:
    if ch == " " or ch in PUNCTUATION:
        return True
    if language.startswith("en"):
        return ch.isascii() and ch.isalpha()
    if language.startswith("fa"):
        return (
            ch == _ZWNJ
            or ("\u0600" <= ch <= "\u06ff" and ch.isalpha())
            or ch in "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652"
        )
    # Other languages: any letter (espeak-ng decides what it can voice).
    return ch.isalpha() or unicodedata.category(ch) == "Mn"


def unsupported_chars(normalized: str, language: str) -> str:
    """The distinct characters of `normalized` that the frontend cannot represent, in order seen.

    Digits count as unsupported: numbers must be spelled out in `normalized_text`, because
    how to read "1984" depends on context that a frontend cannot know.
    """
    seen: dict[str, None] = {}
    for ch in normalized:
        if not _char_allowed(ch, language):
            seen.setdefault(ch, None)
    return "".join(seen)


def to_characters(normalized: str) -> list[str]:
    """The character frontend: lowercase characters, one symbol each."""
    return list(normalized.lower())


def to_phonemes(texts: Sequence[str], language: str) -> list[list[str]]:
    """Phonemize texts of one language with espeak-ng; one symbol per IPA character.

    Word boundaries become " ", punctuation is kept. Raises FrontendError when espeak-ng is
    missing or does not know the language.
    """
    try:
        from phonemizer.backend import EspeakBackend
        from phonemizer.separator import Separator
    except ImportError as e:  # pragma: no cover - phonemizer is a pinned dependency
        raise FrontendError("phonemizer is not installed: pip install phonemizer") from e
    try:
        backend = EspeakBackend(
            language,
            preserve_punctuation=True,
            punctuation_marks=PUNCTUATION,
            with_stress=True,
            language_switch="remove-flags",
        )
    except RuntimeError as e:
        raise FrontendError(
            f"espeak-ng cannot phonemize language {language!r} ({e}); install it with "
            "`apt-get install espeak-ng` or choose features.frontend: characters"
        ) from e
    out = backend.phonemize(list(texts), separator=Separator(word=WORD_SEPARATOR, phone=""), strip=True, njobs=1)
    return [split_ipa(_SPACES.sub(WORD_SEPARATOR, p).strip()) for p in out]


def split_ipa(ipa: str) -> list[str]:
    """IPA string -> phone symbols: one per base character, with stress marks joined to the
    next phone and length marks and combining diacritics joined to the previous one.

    Keeping stress and length inside the phone symbol means every symbol is something that
    takes time to say, which is what a duration can be assigned to.
    """
    out: list[str] = []
    pending = ""
    for ch in ipa:
        if ch in _STRESS:
            pending += ch
        elif (ch in _LENGTH or unicodedata.category(ch) == "Mn") and out and out[-1] != WORD_SEPARATOR:
            out[-1] += ch
        else:
            out.append(pending + ch)
            pending = ""
    if pending:
        out.append(pending)
    return out


def build_symbol_table(sequences: Iterable[Sequence[str]]) -> list[str]:
    """A deterministic symbol table: the pad symbol at id 0, then every symbol seen, sorted."""
    seen = {s for seq in sequences for s in seq}
    seen.discard(PAD)
    return [PAD, *sorted(seen)]


def encode(symbols: Sequence[str], table: Sequence[str]) -> list[int]:
    """Map symbols to ids; an unknown symbol raises FrontendError naming it."""
    index = {s: i for i, s in enumerate(table)}
    try:
        return [index[s] for s in symbols]
    except KeyError as e:
        raise FrontendError(f"symbol {e.args[0]!r} is not in the symbol table") from None


def nearest_symbol(symbol: str, known: set[str]) -> str:
    """`symbol` if the model knows it, else the same phone with another stress or without its
    length mark (stress and length are folded into the phone symbols, so a phone seen only
    unstressed in training may come with secondary stress in a new sentence). A symbol with
    no known variant is returned unchanged, for `encode` to report."""
    if symbol in known:
        return symbol
    base = symbol.lstrip(_STRESS)
    stripped = base.rstrip(_LENGTH)
    for candidate in (base, "ˈ" + base, "ˌ" + base, stripped, "ˈ" + stripped, "ˌ" + stripped):
        if candidate in known:
            return candidate
    return symbol


def text_to_ids(
    texts: Sequence[str], language: str, frontend: str, symbols: Sequence[str], lines: Sequence[int] | None = None
) -> list[list[int]]:
    """What a user typed -> symbol ids of a model with this `frontend` and symbol table: numbers
    and abbreviations spelled out for `language` (model/textnorm), the text normalized, then
    phonemes (or characters), each symbol the model's nearest. Empty text, characters still
    unreadable after spelling out and symbols the model never saw raise FrontendError naming
    the line: `lines[i]` is text i's line number, by default its position counted from 1."""
    from model.textnorm import spell_out  # the number speller loads only when text is spoken

    number = list(lines) if lines is not None else list(range(1, len(texts) + 1))
    normalized = [spell_out(t, language) for t in texts]  # spell_out also tidies (normalize_text)
    for i, t in enumerate(normalized):
        if not t:
            raise FrontendError(f"line {number[i]}: empty text")
        bad = unsupported_chars(t, language)
        if bad:
            raise FrontendError(f"line {number[i]}: characters the frontend cannot read: {bad!r} in {t!r}")
    sequences = (
        [to_characters(t) for t in normalized] if frontend == "characters" else to_phonemes(normalized, language)
    )
    out = []
    known = set(symbols)
    for i, (t, syms) in enumerate(zip(normalized, sequences)):
        if not syms:
            raise FrontendError(f"line {number[i]} ({t!r}): the frontend produced no symbols")
        try:
            out.append(encode([nearest_symbol(s, known) for s in syms], symbols))
        except FrontendError as e:
            raise FrontendError(f"line {number[i]} ({t!r}): {e}; the model cannot say it") from None
    return out
