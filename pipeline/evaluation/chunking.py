"""Long text in pieces the model can say: sentences, bounded chunks, and audio joined with pauses.

The model's position tables hold a fixed number of positions (model/layers.py
PositionalEncoding), so one pass cannot say an arbitrarily long text: a line is said sentence by
sentence, a sentence still too long is cut at a comma or a word boundary near a length bound, and
the pieces' audio is joined with a short silence. Pure functions over text, sequences and arrays.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TypeVar

import numpy as np

# Marks that end a sentence: . ! ? ; and the Arabic-script question mark, full stop and
# semicolon (Persian writes ؟ and ؛; ۔ is the Urdu full stop some Persian texts use).
SENTENCE_ENDS = ".!?;؟۔؛"
# A sentence ends at one or more end marks, then any closing quotes or brackets, then
# whitespace: "e.g." or "3.5" do not end a sentence, `He said "Stop." Then` does.
_SENTENCE_BREAK = re.compile(rf"(?<=[{re.escape(SENTENCE_ENDS)}])([\"'»)\]]*)\s+")

# Silence put between the pieces of a long line. Each piece already starts and ends with the
# model's own short edge silence (it was trained on trimmed recordings), so a little more makes
# a sentence break a listener hears as one, without the gaps of a list being read out.
SENTENCE_PAUSE_SECONDS = 0.2
# Fade at each edge of a piece that meets a pause: a piece whose audio stops off zero would
# otherwise click against the silence. Short enough not to be heard as a fade.
EDGE_FADE_SECONDS = 0.01
# The most speaking time one token is assumed to take, on average over a piece, when sizing
# pieces to the position tables. Read speech runs at 10-15 phones (or letters) a second, about
# 0.07-0.1 s a token; 0.25 s leaves room for slow voices, pauses at punctuation and a model
# whose durations run long, so the bound holds without predicting durations first. At 22.05 kHz
# and hop 256 with the 8192-position tables it gives pieces of up to ~380 tokens (~30 s of
# speech): sentences that long are rare, so nearly every line is cut at sentence ends only.
MAX_SECONDS_PER_TOKEN = 0.25
# Symbols after which a too-long sentence is best cut (a pause the voice makes anyway).
SOFT_BREAKS = ",،:"

T = TypeVar("T")


def _has_speech(piece: str) -> bool:
    """Whether `piece` holds anything to say (a letter or digit), not only punctuation."""
    return any(ch.isalnum() for ch in piece)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order; no piece is empty or punctuation alone.

    A run of punctuation between sentence ends ("Wait. . . What?") is kept with the sentence
    before it (with the next one at the start of the text), since the frontend has nothing to
    voice in it on its own. Text without speech gives [] (the caller reports it as it would
    any other line).
    """
    pieces = [p.strip() for p in _SENTENCE_BREAK.sub(lambda m: m.group(1) + "\n", text).split("\n")]
    sentences: list[str] = []
    pending = ""  # punctuation met before the first sentence with speech
    for piece in pieces:
        if not piece:
            continue
        if _has_speech(piece):
            sentences.append(f"{pending} {piece}".strip())
            pending = ""
        elif sentences:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            pending = f"{pending} {piece}".strip()
    return sentences


def _cut(items: Sequence[T], bound: int, soft: Collection[T], spaces: Collection[T]) -> int:
    """Where to cut `items` (longer than `bound`) so its first piece holds at most `bound` items:
    near an even share of what is left (no one-word orphan after a pause), preferring a
    comma-like item (a pause the voice makes anyway) from half that share on, else the word
    boundary nearest it, else any comma, else the share itself (a word longer than the bound
    has nowhere better)."""
    target = -(-len(items) // -(-len(items) // bound))  # ceil(len / pieces needed)
    window = range(1, bound + 1)  # cut positions: items[:i] is the piece

    def nearest(ok: list[int]) -> int | None:
        return min(ok, key=lambda i: (abs(i - target), -i)) if ok else None

    for candidates in (
        [i for i in window if i >= target / 2 and items[i - 1] in soft],
        [i for i in window if items[i] in spaces or items[i - 1] in spaces],
        [i for i in window if items[i - 1] in soft],
    ):
        best = nearest(candidates)
        if best is not None:
            return best
    return target


def _strip(items: Sequence[T], spaces: Collection[T]) -> Sequence[T]:
    """`items` without leading and trailing word separators (a piece starts and ends on a word)."""
    start, end = 0, len(items)
    while start < end and items[start] in spaces:
        start += 1
    while end > start and items[end - 1] in spaces:
        end -= 1
    return items[start:end]


def split_at_bound(items: Sequence[T], bound: int, soft: Collection[T], spaces: Collection[T]) -> list[Sequence[T]]:
    """`items` (a sentence's symbols, or its text) in pieces of at most `bound` items, cut at a
    comma (`soft`) or a word boundary (`spaces`) nearest the bound (see `_cut`); separators at a
    cut are dropped. A sequence within the bound comes back whole and untouched."""
    if bound < 1:
        raise ValueError(f"the chunk bound must be at least 1 item, got {bound}")
    if len(items) <= bound:
        return [items]
    pieces: list[Sequence[T]] = []
    rest = items
    while len(rest) > bound:
        i = _cut(rest, bound, soft, spaces)
        piece = _strip(rest[:i], spaces)
        if len(piece):
            pieces.append(piece)
        rest = _strip(rest[i:], spaces)
    if len(rest):
        pieces.append(rest)
    return pieces


def fade_edges(wave: np.ndarray, samples: int) -> np.ndarray:
    """`wave` with a linear fade-in and fade-out of `samples` each, so a piece whose last sample
    is not zero does not click where it meets the silence of a pause."""
    n = min(samples, len(wave) // 2)
    if n < 1:
        return wave
    ramp = (np.arange(1, n + 1, dtype=np.float64) / (n + 1)).astype(wave.dtype)
    out = wave.copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def join_with_gaps(parts: Sequence[np.ndarray], gap: int, fill: float) -> np.ndarray:
    """`parts` concatenated along their first axis with `gap` rows of `fill` between each two
    (waves [samples] with silence, mels [frames, n_mels] with the log of the mel floor)."""
    if not parts:
        raise ValueError("nothing to join")
    spacer = np.full((gap, *parts[0].shape[1:]), fill, dtype=parts[0].dtype)
    joined: list[np.ndarray] = []
    for k, part in enumerate(parts):
        if k:
            joined.append(spacer)
        joined.append(part)
    return np.concatenate(joined, axis=0)


def max_piece_tokens(
    text_positions: int,
    frame_positions: int,
    frames_per_second: float,
    length_scale: float,
    autoregressive_reduction: int | None = None,
    max_length_factor: float = 1.0,
) -> int:
    """The most tokens one piece may hold so that neither position table overflows: the text
    encoder's (one position per token) and the decoder's (one per frame, or for an
    autoregressive decoder one per step of `autoregressive_reduction` frames, whose length cap
    lets a run whose stop never fires go on to `max_length_factor` times the predicted frames),
    at MAX_SECONDS_PER_TOKEN of speech per token stretched by `length_scale`."""
    frames = float(frame_positions)
    if autoregressive_reduction is not None:
        frames = frames * autoregressive_reduction / max_length_factor
    frames_per_token = MAX_SECONDS_PER_TOKEN * frames_per_second * length_scale
    return max(1, min(text_positions, int(frames / frames_per_token)))


def text_pieces(
    texts: Sequence[str],
    language: str,
    frontend: str,
    symbols: Sequence[str],
    bound: int,
) -> tuple[list[int], list[list[int]]]:
    """Each text's sentences as symbol ids (model/text.py `text_to_ids`), a sentence longer
    than `bound` tokens cut at a comma or word boundary near it: (the index of the text each
    piece belongs to, the pieces' ids), in reading order. A one-sentence text within the bound
    is one piece, tokenized from the text itself (so an empty line still reaches text_to_ids,
    which names it)."""
    from model.config import WORD_SEPARATOR
    from model.text import text_to_ids
    from model.textnorm import spell_out

    # Spelled out before the split: "Dr. Smith" is one sentence, "Doctor Smith" (text_to_ids
    # spells each piece out again, which changes nothing).
    sentences = [split_sentences(spell_out(t, language)) for t in texts]
    # Fewer than two sentences: the line itself, untouched (and an empty line still reaches
    # text_to_ids, which names it).
    sentences = [found if len(found) > 1 else [text] for found, text in zip(sentences, texts)]
    flat = [s for found in sentences for s in found]
    owners = [i for i, found in enumerate(sentences) for _ in found]
    ids = text_to_ids(flat, language, frontend, symbols, [i + 1 for i in owners])
    soft = {symbols.index(s) for s in SOFT_BREAKS if s in symbols}
    spaces = {symbols.index(WORD_SEPARATOR)} if WORD_SEPARATOR in symbols else set()
    piece_owners: list[int] = []
    pieces: list[list[int]] = []
    for owner, sentence in zip(owners, ids):
        for piece in split_at_bound(sentence, bound, soft, spaces):
            piece_owners.append(owner)
            pieces.append(list(piece))
    return piece_owners, pieces
