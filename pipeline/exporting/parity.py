"""Does the exported voice say what the torch model says? Mel by mel, on the same symbol ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.runtime import Voice

# The most a runtime mel value may differ from torch's (natural-log mel units) for the voice to
# count as the same voice: the bar, two orders above what float32 reordering leaves.
MAX_MEL_DIFFERENCE = 1e-3


@dataclass(frozen=True)
class Parity:
    """One text through both: frames each made, whether each stop fired, the largest mel difference
    (inf when the frame counts differ)."""

    text: str
    torch_frames: int
    runtime_frames: int
    torch_stop: bool | None
    runtime_stop: bool | None
    max_difference: float

    @property
    def same(self) -> bool:
        """Same frames, same stop, every value within MAX_MEL_DIFFERENCE."""
        return (
            self.torch_frames == self.runtime_frames
            and self.torch_stop == self.runtime_stop
            and self.max_difference <= MAX_MEL_DIFFERENCE
        )


def compare(synth: Synthesizer, voice: Voice, texts: Sequence[str], language: str | None = None) -> list[Parity]:
    """Each text (one sentence each) through the torch model and the runtime, one at a time."""
    lang = synth.language(language)
    return compare_ids(synth, voice, list(texts), synth.tokens(list(texts), lang), lang)


def symbol_sequences(symbols: Sequence[str], lengths: Sequence[int], seed: int = 0) -> list[list[int]]:
    """Seeded sequences of symbol ids (no pad) of the given lengths: input in any language the
    model was trained on, for a check that needs no frontend."""
    rng = np.random.default_rng(seed)
    return [[int(i) for i in rng.integers(1, len(symbols), n)] for n in lengths]


def compare_ids(
    synth: Synthesizer, voice: Voice, labels: Sequence[str], sequences: Sequence[list[int]], language: str
) -> list[Parity]:
    """Each sequence of symbol ids (named by its label) through the torch model and the runtime."""
    results = []
    for text, ids in zip(labels, sequences):
        ((reference, torch_stop, _),) = synth.mels([ids], language)
        mel, runtime_stop = voice.mel(ids, language)
        same_length = reference.shape == mel.shape
        difference = float(np.abs(reference - mel).max()) if same_length else float("inf")
        results.append(Parity(text, len(reference), len(mel), torch_stop, runtime_stop, difference))
    return results
