"""Monotonic alignment search: optimal, monotonic, and durations that add up."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model.mas import durations_from_path, viterbi_durations, viterbi_path


def brute_force_path(log_p: np.ndarray) -> np.ndarray:
    """Score every way of cutting the frames into one non-empty run per token."""
    frames, tokens = log_p.shape
    best, best_path = -np.inf, None
    for cuts in itertools.combinations(range(1, frames), tokens - 1):
        bounds = (0, *cuts, frames)
        path = np.concatenate([[k] * (bounds[k + 1] - bounds[k]) for k in range(tokens)])
        score = log_p[np.arange(frames), path].sum()
        if score > best:
            best, best_path = score, path
    assert best_path is not None
    return best_path


def test_viterbi_path_equals_brute_force_on_small_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        frames = int(rng.integers(1, 9))
        tokens = int(rng.integers(1, frames + 1))
        log_p = rng.normal(size=(frames, tokens))
        np.testing.assert_array_equal(viterbi_path(log_p), brute_force_path(log_p))


def brute_force_with_optional(log_p: np.ndarray, optional: np.ndarray) -> float:
    """Best score over every assignment of frame counts (>= 1, or >= 0 when optional)."""
    frames, tokens = log_p.shape
    best = -np.inf
    for counts in itertools.product(range(frames + 1), repeat=tokens):
        if sum(counts) != frames or any(c < 1 for c, o in zip(counts, optional) if not o):
            continue
        path = np.repeat(np.arange(tokens), counts)
        best = max(best, float(log_p[np.arange(frames), path].sum()))
    return best


def test_viterbi_with_optional_tokens_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 200:
        frames, tokens = int(rng.integers(1, 7)), int(rng.integers(1, 6))
        optional = rng.random(tokens) < 0.4
        optional[1:] &= ~optional[:-1]  # never two optional tokens side by side
        if not 1 <= (~optional).sum() <= frames:
            continue
        log_p = rng.normal(size=(frames, tokens))
        path = viterbi_path(log_p, optional)
        assert np.all(np.diff(path) >= 0)
        assert log_p[np.arange(frames), path].sum() == pytest.approx(brute_force_with_optional(log_p, optional))
        checked += 1


def test_optional_tokens_take_zero_frames_or_a_pause() -> None:
    # tokens: a, (sep), b ; frames 0-2 are a, 3-4 are a pause the separator explains, 5-7 b.
    log_p = np.full((8, 3), -5.0)
    log_p[0:3, 0] = 0.0
    log_p[3:5, 1] = 0.0
    log_p[5:8, 2] = 0.0
    optional = np.array([False, True, False])
    assert viterbi_durations(log_p, optional).tolist() == [3, 2, 3]
    log_p[3:5, 1] = -9.0  # no pause: the separator is passed over
    log_p[3:5, 0] = 0.0
    assert viterbi_durations(log_p, optional).tolist() == [5, 0, 3]


def test_durations_give_every_token_a_frame_and_sum_to_the_frame_count() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        tokens = int(rng.integers(1, 60))
        frames = tokens + int(rng.integers(0, 400))
        d = viterbi_durations(np.log(rng.dirichlet(np.ones(tokens), size=frames)))
        assert d.min() >= 1
        assert d.sum() == frames
        assert len(d) == tokens


def test_path_is_monotonic_with_unit_steps() -> None:
    rng = np.random.default_rng(2)
    path = viterbi_path(rng.normal(size=(300, 40)))
    steps = np.diff(path)
    assert path[0] == 0 and path[-1] == 39
    assert set(np.unique(steps)) <= {0, 1}


def test_path_follows_a_clear_diagonal() -> None:
    truth = np.repeat(np.arange(5), [3, 1, 4, 2, 5])
    log_p = np.full((15, 5), -10.0)
    log_p[np.arange(15), truth] = 0.0
    np.testing.assert_array_equal(durations_from_path(viterbi_path(log_p), 5), [3, 1, 4, 2, 5])


def test_more_tokens_than_frames_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot align 5 required tokens to 3 frames"):
        viterbi_path(np.zeros((3, 5)))
