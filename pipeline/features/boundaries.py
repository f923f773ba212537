"""Aligner accuracy: word boundaries from durations against reference timings.

The reference is festival's own segmentation of the demo corpus (alignments/<id>.json,
written by the corpus stage), shifted by the silence precompute trimmed from the start and
clipped to the audio that was kept. Word k of the token sequence spans its phone tokens:
word separators and punctuation are not part of a word, so a pause held in a comma does not
stretch the word before it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.config import WORD_SEPARATOR
from model.text import PUNCTUATION, to_phonemes


def _is_phone(s: str) -> bool:
    return s != WORD_SEPARATOR and s not in PUNCTUATION


def word_phone_counts(symbols: list[str]) -> list[int]:
    """Number of phone symbols in each ' '-separated word of a symbol sequence."""
    counts, current = [], 0
    for s in [*symbols, WORD_SEPARATOR]:
        if s == WORD_SEPARATOR:
            if current:
                counts.append(current)
            current = 0
        elif _is_phone(s):
            current += 1
    return counts


def word_spans(symbols: list[str], durations: np.ndarray, seconds_per_frame: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of each word's phones, words separated by ' ' symbols."""
    edges = np.concatenate([[0], np.cumsum(durations)]) * seconds_per_frame
    spans: list[tuple[float, float]] = []
    current: list[int] = []
    for k, s in enumerate([*symbols, WORD_SEPARATOR]):
        if s == WORD_SEPARATOR:
            if current:
                spans.append((float(edges[current[0]]), float(edges[current[-1] + 1])))
            current = []
        elif _is_phone(s):
            current.append(k)
    return spans


def group_words(word_phones: list[int], group_phones: list[int]) -> list[int] | None:
    """How many reference words each phonemized word stands for.

    espeak-ng runs some function words together ("in the" -> one word "ɪnðə"), so the token
    sequence can have fewer words than the transcript. Given the phone count of each
    transcript word said alone and of each token-sequence word, find the split of the
    transcript words into consecutive runs, one per token word, whose phone counts match
    best (dynamic programming). None when there are more token words than transcript words.
    """
    n, m = len(word_phones), len(group_phones)
    if m > n or m == 0:
        return None
    prefix = np.concatenate([[0], np.cumsum(word_phones)])
    inf = float("inf")
    cost = np.full((m + 1, n + 1), inf)
    back = np.zeros((m + 1, n + 1), dtype=np.int64)
    cost[0, 0] = 0.0
    for j in range(1, m + 1):
        for i in range(j, n - (m - j) + 1):
            for k in range(j - 1, i):
                c = cost[j - 1, k] + abs(prefix[i] - prefix[k] - group_phones[j - 1]) + (i - k - 1) * 0.5
                if c < cost[j, i]:
                    cost[j, i], back[j, i] = c, k
    sizes = []
    i = n
    for j in range(m, 0, -1):
        k = int(back[j, i])
        sizes.append(i - k)
        i = k
    return sizes[::-1]


def merge_reference(reference: list[tuple[float, float]], sizes: list[int]) -> list[tuple[float, float]]:
    """Reference word spans merged into runs of `sizes` words (start of first, end of last)."""
    out, k = [], 0
    for size in sizes:
        out.append((reference[k][0], reference[k + size - 1][1]))
        k += size
    return out


def boundary_errors(predicted: list[tuple[float, float]], reference: list[tuple[float, float]]) -> np.ndarray | None:
    """Absolute errors (seconds) of every word start and end; None when word counts differ."""
    if len(predicted) != len(reference) or not predicted:
        return None
    p = np.asarray(predicted, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    return np.abs(p - r)


def load_reference_words(corpus: Path, utt_id: str, offset: float, duration: float) -> list[tuple[float, float]] | None:
    """Festival's word (start, end) for one utterance, shifted by -offset (the trimmed lead)
    and clipped to [0, duration] (trimming can cut into a quiet first or last phone)."""
    path = corpus / "alignments" / f"{utt_id}.json"
    if not path.is_file():
        return None
    words = json.loads(path.read_text(encoding="utf-8"))["words"]

    def clip(t: float) -> float:
        return min(max(float(t) - offset, 0.0), duration)

    return [(clip(s), clip(e)) for _, s, e in words]


def summarize(errors: list[np.ndarray], n_utts: int, n_compared: int) -> dict[str, float | int]:
    """Mean/median absolute boundary error in ms and the shares within 20 and 50 ms."""
    if not errors:
        return {"utterances_compared": 0, "utterances_skipped": n_utts}
    e = np.concatenate(errors) * 1000.0
    return {
        "utterances_compared": n_compared,
        "utterances_skipped": n_utts - n_compared,
        "word_boundaries": int(e.size),
        "word_boundary_mean_ms": round(float(e.mean()), 2),
        "word_boundary_median_ms": round(float(np.median(e)), 2),
        "word_boundary_within_20ms": round(float((e <= 20).mean()), 4),
        "word_boundary_within_50ms": round(float((e <= 50).mean()), 4),
    }


def corpus_accuracy(
    ids: list[str],
    corpus_dirs: list[Path],
    texts: list[str],
    languages: list[str],
    symbols: list[list[str]],
    durations: list[np.ndarray],
    trim_start: np.ndarray,
    seconds_per_frame: float,
) -> dict[str, float | int]:
    """Word-boundary accuracy of durations against the reference timings the corpus carries
    (`alignments/<id>.json`); {} when it carries none (a user's own corpus)."""
    refs = {
        i: load_reference_words(
            corpus_dirs[i], ids[i], float(trim_start[i]), float(durations[i].sum()) * seconds_per_frame
        )
        for i in range(len(ids))
    }
    have = [i for i, r in refs.items() if r is not None]
    if not have:
        return {}
    words = {i: [w for w in (t.strip(PUNCTUATION) for t in texts[i].split()) if w] for i in have}
    alone: dict[str, list[int]] = {}
    for lang in sorted({languages[i] for i in have}):
        vocab = sorted({w for i in have if languages[i] == lang for w in words[i]})
        alone.update({w: len([x for x in p if _is_phone(x)]) for w, p in zip(vocab, to_phonemes(vocab, lang))})
    errors, merged = [], 0
    for i in have:
        reference = refs[i]
        if reference is None or len(reference) != len(words[i]):
            continue
        sizes = group_words([alone[w] for w in words[i]], word_phone_counts(symbols[i]))
        if sizes is None:
            continue
        merged += sum(1 for k in sizes if k > 1)
        e = boundary_errors(word_spans(symbols[i], durations[i], seconds_per_frame), merge_reference(reference, sizes))
        if e is not None:
            errors.append(e)
    return {**summarize(errors, len(have), len(errors)), "word_groups_merged_by_espeak": merged}
