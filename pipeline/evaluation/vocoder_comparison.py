"""Griffin-Lim and the trained vocoder side by side (eval.json `vocoder.<name>.*`).

For each of the first `eval.vocoder_utterances` evaluated utterances (all of them at 0) each
vocoder turns two mels into speech: the recording's own mel
(copy synthesis: how close the vocoder alone gets to the recording) and the acoustic model's
free-running mel (what a user hears). Copy synthesis is scored against the recording with
PESQ-WB, ESTOI and MCD-DTW, timed on one thread, and heard by the recognizer; the synthesized
speech is heard too, so each vocoder has its own WER gap (synthesized minus copy synthesis).

pocketsphinx adapts to what it heard before, so each vocoder gets its own recognizer that
hears its audio in the order the evaluation's main recognizer hears the primary vocoder's
(synthesized, copy synthesis, recording, utterance after utterance); the primary vocoder's
figures are the main recognizer's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.vocoder import Vocoder
from pipeline.evaluation.mcd import mcd_dtw
from pipeline.evaluation.quality import QualityScoreError, estoi, pesq_wb
from pipeline.evaluation.wer import Recognizer, word_error_rate


def overlap(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals cut to the shorter. Every Hamgara vocoder's wave lines up with the mel's
    frames, so sample n of either is sample n of the recording: nothing is realigned (a
    cross-correlation search for a lag picks pitch periods when the phase is not the
    recording's)."""
    n = min(len(reference), len(degraded))
    return reference[:n], degraded[:n]


def vocode_on_one_thread(vocoder: Vocoder, mel: np.ndarray) -> tuple[np.ndarray, float]:
    """The wave of `mel` and the seconds it took on one CPU thread (a user's laptop, a server
    worker): the real-time factor evaluate and benchmarks/vocoder.py report."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        wave = vocoder(torch.from_numpy(mel)).numpy()
        return wave, time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Tally:
    """One vocoder's per-utterance figures, accumulated."""

    pesq: list[float] = field(default_factory=list)
    estoi: list[float] = field(default_factory=list)
    mcd: list[float] = field(default_factory=list)
    unscored: int = 0
    seconds: float = 0.0
    samples: int = 0
    references: list[str] = field(default_factory=list)
    heard_copy: list[str] = field(default_factory=list)
    heard_synthesized: list[str] = field(default_factory=list)


class VocoderComparison:
    """Scores each of `vocoders` per utterance (`add`), then reports them (`report`)."""

    def __init__(
        self,
        vocoders: dict[str, Vocoder],
        primary: str,
        cepstrum: Callable[[np.ndarray], np.ndarray],
        recognize: bool,
    ) -> None:
        self.vocoders = vocoders
        self.primary = primary
        self.cepstrum = cepstrum
        self.tallies = {name: _Tally() for name in vocoders}
        # The primary vocoder is heard by the evaluation's own recognizer (its rows' heard_*).
        self.recognizers = {name: Recognizer() for name in vocoders if name != primary} if recognize else {}
        self.recognize = recognize

    def add(
        self,
        truth: np.ndarray,
        true_mel: np.ndarray,
        synthesized_mel: np.ndarray,
        text: str,
        primary_waves: tuple[np.ndarray, np.ndarray],
        primary_heard: tuple[str, str] | None,
    ) -> dict[str, np.ndarray]:
        """Score one utterance through every vocoder. `primary_waves` are the primary vocoder's
        (copy synthesis, synthesized) waves and `primary_heard` what the main recognizer heard
        of them, both already made. Returns the other vocoders' waves, named
        `vocoded_truth_<name>` and `synthesized_<name>`."""
        waves: dict[str, np.ndarray] = {}
        for name, vocoder in self.vocoders.items():
            tally = self.tallies[name]
            if name == self.primary:
                copy, synthesized = primary_waves
            else:
                synthesized = vocoder(torch.from_numpy(synthesized_mel)).numpy()
                copy = vocoder(torch.from_numpy(true_mel)).numpy()
                waves[f"vocoded_truth_{name}"], waves[f"synthesized_{name}"] = copy, synthesized
            # Timed apart, on one thread: the scored copy is made on the stage's threads, as the
            # primary's is, because Griffin-Lim's wave (and what pocketsphinx hears of it)
            # changes with the thread count's rounding.
            tally.seconds += vocode_on_one_thread(vocoder, true_mel)[1]
            tally.samples += len(copy)
            ref, deg = overlap(truth, copy)
            try:
                tally.pesq.append(pesq_wb(ref, deg, vocoder.sample_rate))
                tally.estoi.append(estoi(ref, deg, vocoder.sample_rate))
            except QualityScoreError:
                tally.unscored += 1  # too short or silent to score: counted, not averaged
            tally.mcd.append(mcd_dtw(self.cepstrum(truth), self.cepstrum(copy)))
            if self.recognize:
                tally.references.append(text)
                if name == self.primary:
                    assert primary_heard is not None
                    heard_synthesized, heard_copy = primary_heard
                else:
                    rate = vocoder.sample_rate
                    recognizer = self.recognizers[name]
                    heard_synthesized = recognizer.transcribe(synthesized, rate)
                    heard_copy = recognizer.transcribe(copy, rate)
                    recognizer.transcribe(truth, rate)  # heard as the main recognizer hears it: see the docstring
                tally.heard_synthesized.append(heard_synthesized)
                tally.heard_copy.append(heard_copy)
        return waves

    def report(self) -> dict[str, Any]:
        """Per vocoder: copy-synthesis PESQ-WB, ESTOI, MCD, RTF on one thread, and with a
        recognizer the WER of copy synthesis, of synthesized speech, and their gap."""
        out: dict[str, Any] = {}
        for name, t in self.tallies.items():
            rate = self.vocoders[name].sample_rate
            figures: dict[str, Any] = {
                "utterances": len(t.mcd),
                "pesq_wb": float(np.mean(t.pesq)) if t.pesq else None,
                "estoi": float(np.mean(t.estoi)) if t.estoi else None,
                "mcd": float(np.mean(t.mcd)) if t.mcd else None,
                "rtf_one_thread": t.seconds / (t.samples / rate) if t.samples else None,
                "unscored": t.unscored,
            }
            if self.recognize and t.references:
                copy = word_error_rate(t.references, t.heard_copy)
                synthesized = word_error_rate(t.references, t.heard_synthesized)
                figures |= {"wer_copy": copy, "wer_synthesized": synthesized, "wer_gap": synthesized - copy}
            out[name] = figures
        return out
