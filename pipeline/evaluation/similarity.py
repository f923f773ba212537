"""Does the synthesized speech sound like the speaker it was asked for? Speaker similarity.

A speaker encoder maps a recording to a unit vector (d-vector); a speaker's centroid is the
normalized mean of the vectors of some of its *training* recordings. Each scored utterance (its
real validation recording, Griffin-Lim of that recording's mel, and the synthesis) is compared
by cosine with every centroid:

- similarity: to its own speaker's centroid;
- margin: that similarity minus the best other speaker's (> 0: nearer its own speaker);
- identified: its nearest centroid is its own speaker's.

The real recordings' margin is the bar (what a perfect model would score against these
centroids), so `margin_ratio` = synthesized margin / real margin says how much of the speaker
the model reproduces. The encoder is Resemblyzer's (GE2E, trained on LibriSpeech, VoxCeleb and
others); its weights ship inside its PyPI wheel, so nothing is downloaded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

KINDS = ("real", "vocoded_truth", "synthesized")


class SpeakerEncoder:
    """Resemblyzer's voice encoder on the CPU (a 3-layer LSTM: about 0.1 s per utterance):
    a wave at any rate in, a unit d-vector out."""

    def __init__(self) -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device="cpu", verbose=False)

    def embed(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """The utterance's unit d-vector (resampled to 16 kHz, long silences cut by its VAD). A
        silent or empty wave (a model that says nothing) still gets a finite vector: it then
        scores as whatever speaker it lands nearest, which is what a listener would hear."""
        from resemblyzer import preprocess_wav

        # Its level normalisation takes log10 of a silent wave's RMS, and an empty one has a mean
        # of nothing: warnings, not errors, and nothing a user can act on.
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vector = self.encoder.embed_utterance(preprocess_wav(wave, source_sr=sample_rate))
        return np.asarray(vector, dtype=np.float64)


def centroids(references: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Each speaker's unit centroid of its reference d-vectors."""
    out = {}
    for name, vectors in references.items():
        mean = np.mean(vectors, axis=0)
        out[name] = mean / np.linalg.norm(mean)
    return out


def score(vector: np.ndarray, speaker: str, centres: dict[str, np.ndarray]) -> dict[str, Any]:
    """One d-vector against every centroid: similarity to `speaker`'s, margin over the best
    other, and whether `speaker`'s is the nearest."""
    sims = {name: float(vector @ c) for name, c in centres.items()}
    own = sims[speaker]
    best_other = max(v for name, v in sims.items() if name != speaker)
    return {"similarity": own, "margin": own - best_other, "identified": own > best_other}


def summarize(scores: list[dict[str, Any]]) -> dict[str, float]:
    """Mean similarity and margin, and the identification accuracy, of some scored utterances."""
    return {
        "similarity": float(np.mean([s["similarity"] for s in scores])),
        "margin": float(np.mean([s["margin"] for s in scores])),
        "identification": float(np.mean([s["identified"] for s in scores])),
    }


def similarity_report(
    references: dict[str, list[np.ndarray]], scored: list[tuple[str, dict[str, np.ndarray]]]
) -> dict[str, Any]:
    """The similarity figures: `references` are each speaker's training-recording d-vectors,
    `scored` (speaker, {kind: d-vector} for the KINDS) one per evaluated utterance. Overall
    and per speaker: each kind's `summarize`, and margin_ratio = synthesized / real margin."""
    if len(references) < 2:
        raise ValueError("speaker similarity needs at least two speakers (a margin is over the other speakers)")
    centres = centroids(references)
    rows = [(spk, {k: score(v, spk, centres) for k, v in vectors.items()}) for spk, vectors in scored]

    def block(selected: list[tuple[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
        out: dict[str, Any] = {k: summarize([r[k] for _, r in selected]) for k in KINDS}
        real = out["real"]["margin"]
        out["margin_ratio"] = out["synthesized"]["margin"] / real if real > 0 else None
        out["utterances"] = len(selected)
        return out

    report = block(rows)
    report["per_speaker"] = {
        name: block([r for r in rows if r[0] == name]) for name in sorted({spk for spk, _ in rows})
    }
    return report
