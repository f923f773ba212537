"""Word error rate, and the offline recognizer that produces the hypotheses.

Intelligibility is measured by what a speech recognizer hears: pocketsphinx's en-us model
(shipped inside its PyPI wheel, so nothing is downloaded) decodes the audio, and reference
and hypothesis go through the same normalization before words are compared. The recognizer
is weak — it misses words of clean recordings too — which is why the ground-truth audio is
scored alongside: the model is judged by the gap, not by the absolute rate.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_NOT_WORD = re.compile(r"[^\w' ]+")
_SPACES = re.compile(r"\s+")


def normalize_words(text: str) -> list[str]:
    """Lowercase words without punctuation (apostrophes inside words kept), NFC, hyphens as spaces."""
    text = unicodedata.normalize("NFC", text).lower().replace("-", " ").replace("\u2019", "'")
    text = _NOT_WORD.sub(" ", text)
    return [w.strip("'") for w in _SPACES.sub(" ", text).split() if w.strip("'")]


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of the best word alignment; errors / reference words is the WER."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def error_counts(reference: list[str], hypothesis: list[str]) -> ErrorCounts:
    """Levenshtein alignment of two word lists, with the kind of each edit."""
    n, m = len(reference), len(hypothesis)
    # cost[i, j]: edits turning reference[:i] into hypothesis[:j]; ops traced back below.
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = reference[i - 1] == hypothesis[j - 1]
            cost[i, j] = min(cost[i - 1, j - 1] + (0 if same else 1), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    i, j, sub, dele, ins = n, m, 0, 0, 0
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            sub += reference[i - 1] != hypothesis[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            dele, i = dele + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return ErrorCounts(int(sub), dele, ins, n)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: all edits over all reference words (texts normalized by normalize_words)."""
    total = ErrorCounts(0, 0, 0, 0)
    for ref, hyp in zip(references, hypotheses, strict=True):
        total = total + error_counts(normalize_words(ref), normalize_words(hyp))
    return total.errors / max(total.reference_words, 1)


class RecognizerUnavailable(ValueError):
    """`eval.recognizer: pocketsphinx` is set but pocketsphinx cannot be imported; the message
    names the setting and both fixes."""


class Recognizer:
    """pocketsphinx's bundled en-us model, offline: wave in, text out."""

    SAMPLE_RATE = 16000

    def __init__(self) -> None:
        """Load the decoder; RecognizerUnavailable when the pocketsphinx package cannot be imported."""
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            # Only eval.recognizer: pocketsphinx builds a Recognizer, so the setting is what to name.
            raise RecognizerUnavailable(
                f"eval.recognizer is pocketsphinx but the pocketsphinx package cannot be imported ({e}): "
                "install it with `pip install pocketsphinx`, or set eval.recognizer: none"
            ) from None
        self._decoder = Decoder(samprate=self.SAMPLE_RATE, loglevel="FATAL")

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        """The recognized words of a mono float wave."""
        import librosa

        y = np.asarray(wave, dtype=np.float32)
        if sample_rate != self.SAMPLE_RATE:
            y = librosa.resample(y, orig_sr=sample_rate, target_sr=self.SAMPLE_RATE)
        pcm = (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


# Resamples of the gap's bootstrap: at 2,000 the interval's ends move by about 0.005 between seeds
# of the resampling itself, a twentieth of its half-width on the demo's 25 utterances.
BOOTSTRAP_RESAMPLES = 2000


def gap_interval(
    references: list[str],
    synthesized: list[str],
    vocoded: list[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of the corpus WER gap (synthesized minus vocoded truth,
    each all edits over all reference words), resampling utterances with replacement: how far
    the gap of another draw of sentences of the same kind could land. Both hypotheses of an
    utterance are resampled together, since they share its sentence's difficulty. Seeded, so
    the same transcripts always give the same interval."""
    words = np.array([len(normalize_words(r)) for r in references], dtype=np.float64)
    errors = np.array(
        [
            error_counts(normalize_words(r), normalize_words(s)).errors
            - error_counts(normalize_words(r), normalize_words(v)).errors
            for r, s, v in zip(references, synthesized, vocoded, strict=True)
        ],
        dtype=np.float64,
    )
    if len(words) == 0:
        return (float("nan"), float("nan"))
    picks = np.random.default_rng(seed).integers(0, len(words), size=(resamples, len(words)))
    gaps = errors[picks].sum(1) / np.maximum(words[picks].sum(1), 1.0)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(gaps, [tail, 100 - tail])
    return float(low), float(high)
