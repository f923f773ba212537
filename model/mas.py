"""Monotonic alignment search: the best hard path through a soft text-to-mel alignment.

The path visits the tokens in order; each frame either stays on its token or moves on.
Ordinary tokens take at least one frame each. Optional tokens (word separators) may take
frames — a pause between words — or be passed over with none, which is what a word
boundary without a pause is. The durations therefore sum exactly to the frame count
(Viterbi over a left-to-right chain, as in Glow-TTS/RAD-TTS, extended by the skips).
"""

from __future__ import annotations

import numpy as np


def viterbi_path(log_p: np.ndarray, optional: np.ndarray | None = None) -> np.ndarray:
    """Token index per frame of the monotonic path maximizing the summed log-probability.

    `log_p` is [frames, tokens]; `optional` [tokens] bool marks tokens that may get no frame
    (default: none); two optional tokens may not be adjacent (word separators never are).
    Needs frames >= the number of non-optional tokens. Returns int64 [frames], non-decreasing,
    covering every non-optional token.
    """
    n_frames, n_tokens = log_p.shape
    opt = np.zeros(n_tokens, dtype=bool) if optional is None else np.asarray(optional, dtype=bool)
    if np.any(opt[1:] & opt[:-1]):
        raise ValueError("two adjacent optional tokens: a skip passes over one token at most")
    required = int((~opt).sum())
    if n_tokens < 1 or required < 1 or n_frames < required:
        raise ValueError(f"cannot align {required} required tokens to {n_frames} frames: need frames >= tokens >= 1")
    neg = -np.inf
    # Tokens still required after token j (exclusive): a path at j on frame t needs that many frames left.
    required_after = np.concatenate([np.cumsum((~opt)[::-1])[::-1][1:], [0]])
    # A path may start on the first token, or on a later one if all before it are optional.
    start_ok = np.concatenate([[True], np.cumprod(opt[:-1]).astype(bool)])
    end_ok = np.concatenate([np.cumprod(opt[::-1][:-1])[::-1].astype(bool), [True]])
    skip_from = np.zeros(n_tokens, dtype=bool)
    skip_from[2:] = opt[1:-1]  # j-2 -> j allowed when j-1 is optional
    score = np.where(start_ok, log_p[0], neg)
    step = np.zeros((n_frames, n_tokens), dtype=np.int8)  # 0 stay, 1 from j-1, 2 from j-2
    for t in range(1, n_frames):
        stay = score
        adv1 = _shift(score, 1)
        adv2 = np.where(skip_from, _shift(score, 2), neg)
        best = np.maximum(stay, np.maximum(adv1, adv2))
        step[t] = np.where(best == stay, 0, np.where(best == adv1, 1, 2))
        score = best + log_p[t]
        score[required_after > n_frames - 1 - t] = neg
    j = int(np.argmax(np.where(end_ok, score, neg)))
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = j
        j -= int(step[t, j]) if t > 0 else 0
    return path


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x moved k places to the right, -inf shifted in."""
    out = np.full_like(x, -np.inf)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def durations_from_path(path: np.ndarray, n_tokens: int) -> np.ndarray:
    """Frames per token (int32 [n_tokens]) of a monotonic path."""
    return np.bincount(path, minlength=n_tokens).astype(np.int32)


def viterbi_durations(log_p: np.ndarray, optional: np.ndarray | None = None) -> np.ndarray:
    """Durations (frames per token) of the best monotonic path through `log_p` [frames, tokens]."""
    return durations_from_path(viterbi_path(log_p, optional), log_p.shape[1])
