"""Free-running figures: what a user would hear, measured on mels, cheap enough to run at every
validation.

Teacher forcing feeds the autoregressive decoder the true previous frames, so its loss can fall
while free-running synthesis drifts (exposure bias). These figures synthesize a few validation
utterances exactly as `hamgara synth` would and compare them with the recordings' mels: the mel
distance after DTW (so a different speaking rate is not counted as error), the same distance
for the teacher-forced output (the gap between the two is the drift), the length ratio error
and how each utterance ended. Both decoders report the same keys; the parallel decoder has no
stop token, and its utterances always end at the predicted length ("fired"), so its outcomes
say only whether that length was on time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.tts import HamgaraTTS, TTSBatch
from pipeline.training.dataset import FeatureDataset, collate

STOP_OUTCOMES = ("on_time", "early", "late", "never")


def stop_outcome(fired: bool | None, predicted: int, target: int, tolerance: float) -> str | None:
    """How an utterance ended: on_time, early, late, or never (the stop token did not fire and
    the length cap ended it); None for a decoder without a stop token."""
    if fired is None:
        return None
    if not fired:
        return "never"
    ratio = predicted / max(target, 1)
    if ratio < 1.0 - tolerance:
        return "early"
    if ratio > 1.0 + tolerance:
        return "late"
    return "on_time"


def dtw_mel_distance(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean absolute difference per mel channel (val_mel_loss's units) along the DTW path
    between two normalized log-mels [T, n_mels]."""
    import librosa  # heavy; only the callers that score need it

    if len(reference) == 0 or len(test) == 0:
        raise ValueError("dtw_mel_distance: an empty mel has no distance")
    _, path = librosa.sequence.dtw(X=reference.T, Y=test.T, metric="cityblock")
    return float(np.abs(reference[path[:, 0]] - test[path[:, 1]]).mean())


@dataclass(frozen=True)
class FreeRunningRow:
    """One utterance: the free-running and teacher-forced distances, lengths and its ending."""

    free_distance: float
    forced_distance: float
    frames: int
    target_frames: int
    outcome: str


@torch.no_grad()
def free_running_rows(model: HamgaraTTS, batch: TTSBatch, tolerance: float) -> list[FreeRunningRow]:
    """Synthesize every utterance of `batch` free-running (the prior style, predicted
    durations) and teacher-forced, and score both against the batch's mels. Leaves the model
    in eval mode; draws nothing from the random number generators, so a training run's
    randomness is the same with or without these figures."""
    model.eval()
    forced = model(batch).mel_post
    out = model.synthesize(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    rows = []
    for k in range(batch.tokens.size(0)):
        n_true, n_free = int(batch.frame_mask[k].sum()), int(out.lengths[k])
        true = batch.mels[k, :n_true].float().cpu().numpy()
        fired = True if out.stop_fired is None else bool(out.stop_fired[k])
        rows.append(
            FreeRunningRow(
                free_distance=dtw_mel_distance(true, out.mel[k, :n_free].float().cpu().numpy()),
                forced_distance=dtw_mel_distance(true, forced[k, :n_true].float().cpu().numpy()),
                frames=n_free,
                target_frames=n_true,
                outcome=stop_outcome(fired, n_free, n_true, tolerance) or "on_time",
            )
        )
    return rows


def summarize(rows: list[FreeRunningRow]) -> dict[str, float]:
    """The `free/*` figures of a validation: means over the rows, stop outcomes as shares."""
    free = float(np.mean([r.free_distance for r in rows]))
    forced = float(np.mean([r.forced_distance for r in rows]))
    figures = {
        "free/mel_distance": free,
        "free/teacher_forced_distance": forced,
        "free/exposure_gap": free - forced,
        "free/length_ratio_error": float(np.mean([abs(r.frames / max(r.target_frames, 1) - 1.0) for r in rows])),
    }
    for outcome in STOP_OUTCOMES:
        figures[f"free/stop_{outcome}"] = sum(r.outcome == outcome for r in rows) / len(rows)
    return figures


def probe_batch(dataset: FeatureDataset, batches: list[list[int]], count: int) -> TTSBatch | None:
    """The first `count` utterances of the validation batches (indices into `dataset`, in the
    order validation reads them) collated into one batch, the same ones at every validation;
    None when count is 0 or there are none."""
    picked = [i for batch in batches for i in batch][:count]
    return collate([dataset[i] for i in picked])[0] if picked else None
