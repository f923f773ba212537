"""The decisions between the exported graphs, in numpy: the same arithmetic as torch's
(model/duration.py `durations_from_log`, `length_regulate`; model/ar_decoder.py
`expected_tokens`, `window_mask` and `generate`'s length cap and stop), in the same precision,
so the runtime walks the steps and frames the torch model walks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def durations(log_durations: np.ndarray, tokens: np.ndarray, optional_ids: Sequence[int], scale: float) -> np.ndarray:
    """Predicted frames per token [N] int64: round(scale * (exp(pred) - 1)), at least 0, and
    at least 1 for every token but a word separator (`optional_ids`), so no phone is skipped.
    In float64, as torch's (see model/duration.py: float32 exps differ in the last bit)."""
    d = np.round(scale * (np.exp(log_durations.astype(np.float64)) - 1.0))
    d = np.maximum(d, 0).astype(np.int64)
    said = ~np.isin(tokens, np.asarray(optional_ids, dtype=np.int64))
    return np.where(said, np.maximum(d, 1), d)


def frame_tokens(durations: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The token speaking at each of `frames` frames [frames] int64, and whether the frame is
    within the durations' total [frames] float32 (length_regulate's gather index and mask)."""
    ends = np.cumsum(durations)
    index = np.minimum(np.searchsorted(ends, np.arange(frames), side="right"), len(durations) - 1)
    valid = (np.arange(frames) < ends[-1]).astype(np.float32)
    return index.astype(np.int64), valid


def step_limit(durations: np.ndarray, max_length_factor: float, reduction: int) -> int:
    """The length cap: ceil(max_length_factor * predicted frames / r) steps, in float32 as torch."""
    predicted = np.float32(max(int(durations.sum()), 1))
    return int(np.ceil(np.float32(max_length_factor) * predicted / np.float32(reduction)))


def window(durations: np.ndarray, step: int, reduction: int, width: int) -> np.ndarray:
    """The tokens step `step` may attend to [1, 1, N] bool: those within `width` of the token
    the durations say is speaking at its first frame."""
    ends = np.cumsum(durations)
    center = min(int(np.searchsorted(ends, step * reduction, side="right")), len(durations) - 1)
    return (np.abs(np.arange(len(durations)) - center) <= width)[None, None, :]


# One decoder step: (prev frames, step, window) -> (frames [1, 1, r * n_mels], stop logit [1]).
Step = Callable[[np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def generate(
    step: Step, durations: np.ndarray, n_mels: int, reduction: int, width: int, max_length_factor: float, stop: float
) -> tuple[np.ndarray, bool]:
    """Free-running autoregressive synthesis of one utterance: mel [frames, n_mels]
    (normalized, before the postnet) and whether the stop token fired (else the cap ended it)."""
    prev = np.zeros((1, 1, reduction * n_mels), dtype=np.float32)
    frames = []
    fired = False
    for s in range(step_limit(durations, max_length_factor, reduction)):
        out, logit = step(prev, s, window(durations, s, reduction, width))
        frames.append(out.reshape(reduction, n_mels))
        prob = np.float32(1.0) / (np.float32(1.0) + np.exp(-logit.astype(np.float32)))
        if bool(prob[0] > stop):
            fired = True
            break
        prev = out
    return np.concatenate(frames, axis=0), fired
