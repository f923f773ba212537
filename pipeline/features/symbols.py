"""Transcripts -> symbols (phonemes or characters) -> token ids, and the check that every
utterance has the frames its tokens need."""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.config import WORD_SEPARATOR
from model.text import FrontendError, to_characters, to_phonemes


def text_symbols(manifest: pd.DataFrame, frontend: str) -> list[list[str]]:
    """Symbols for every manifest row, phonemized per language in one espeak-ng call each."""
    out: list[list[str] | None] = [None] * len(manifest)
    if frontend == "characters":
        return [to_characters(t) for t in manifest["normalized"]]
    for lang, group in manifest.groupby("language", sort=True):
        for pos, syms in zip(group.index, to_phonemes(group["normalized"].tolist(), str(lang))):
            out[pos] = syms
    empty = [manifest.loc[i, "id"] for i, s in enumerate(out) if not s]
    if empty:
        raise FrontendError(f"espeak-ng produced no phonemes for: {', '.join(empty[:10])}")
    return [s for s in out if s is not None]


def separator_ids(table: list[str]) -> frozenset[int]:
    """Token ids of the word separator (none when the table has no separator)."""
    return frozenset(table.index(s) for s in (WORD_SEPARATOR,) if s in table)


def check_frames(ids: list[str], symbols: list[list[str]], frames: np.ndarray) -> None:
    """Raise ValueError naming the utterances with fewer mel frames than tokens that take frames
    (word separators take none), which no duration can fit."""
    too_fast = [ids[i] for i in range(len(ids)) if frames[i] < sum(s != WORD_SEPARATOR for s in symbols[i])]
    if too_fast:
        raise ValueError(
            f"{len(too_fast)} utterance(s) have fewer mel frames than tokens, so no duration can give "
            f"each token a frame: {', '.join(too_fast[:10])}. Check their transcripts."
        )
