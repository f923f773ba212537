"""PESQ-WB and ESTOI for copy synthesis: top marks for a perfect copy, lower for a noisier one, and a
QualityScoreError naming the score, never a crash or a placeholder number, for input they cannot judge."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from helpers import speech_like
from pipeline.evaluation.quality import QualityScoreError, estoi, pesq_wb, real_time_factor

SR = 22050
SCORES = [pytest.param(pesq_wb, "PESQ-WB", id="pesq_wb"), pytest.param(estoi, "ESTOI", id="estoi")]

Score = Callable[[np.ndarray, np.ndarray, int], float]


def vowel(seconds: float = 1.5) -> np.ndarray:
    """A harmonic vowel with syllable-rate loudness, the kind of signal both scores are built for."""
    return speech_like(seconds, SR, seed=0)


def noisy(wave: np.ndarray, level: float, seed: int = 1) -> np.ndarray:
    return (wave + level * np.random.default_rng(seed).standard_normal(len(wave))).astype(np.float32)


def test_identical_signals_score_at_the_top_of_both_scales() -> None:
    wave = vowel()
    assert pesq_wb(wave, wave, SR) > 4.4
    assert estoi(wave, wave, SR) > 0.99


@pytest.mark.parametrize("score, name", SCORES)
def test_a_noisier_copy_scores_lower(score: Score, name: str) -> None:
    wave = vowel()
    values = [score(wave, noisy(wave, level), SR) for level in (0.003, 0.01, 0.03)]
    assert values[0] > values[1] > values[2], values


@pytest.mark.parametrize("score, name", SCORES)
def test_signals_of_different_lengths_are_compared_over_the_shorter(score: Score, name: str) -> None:
    wave = vowel()
    degraded = noisy(wave, 0.01)
    longer = np.concatenate([degraded, noisy(np.zeros(SR // 10, np.float32), 0.1)])
    # ESTOI adds machine-epsilon dither of its own, hence close rather than equal.
    assert np.isclose(score(wave, longer, SR), score(wave, degraded, SR), rtol=1e-6)
    assert np.isclose(score(longer, wave, SR), score(degraded, wave, SR), rtol=1e-6)


@pytest.mark.parametrize("score, name", SCORES)
def test_too_short_input_is_refused_naming_the_score(score: Score, name: str) -> None:
    short = vowel()[int(0.1 * SR) : int(0.3 * SR)]  # 0.2 s past the quiet lead-in
    with pytest.raises(QualityScoreError, match=rf"{name}.*needs at least .* got 0\.20 s"):
        score(short, short, SR)


@pytest.mark.parametrize("score, name", SCORES)
@pytest.mark.parametrize("which", ["reference", "degraded"])
def test_silent_input_is_refused_naming_the_score_and_the_signal(score: Score, name: str, which: str) -> None:
    wave = vowel()
    silence = np.zeros_like(wave)
    pair = (silence, wave) if which == "reference" else (wave, silence)
    with pytest.raises(QualityScoreError, match=rf"{name}.*the {which} signal is digital silence"):
        score(*pair, SR)


def test_estoi_refuses_a_long_signal_with_too_little_speech_instead_of_returning_a_placeholder() -> None:
    # 1.5 s, but only 0.2 s of it within ESTOI's 40 dB of the loudest frame.
    sparse = np.zeros(int(1.5 * SR), np.float32)
    sparse[: int(0.2 * SR)] = vowel()[int(0.1 * SR) : int(0.3 * SR)]
    with pytest.raises(QualityScoreError, match=r"ESTOI needs at least .* of speech in the reference"):
        estoi(sparse, sparse, SR)


@pytest.mark.parametrize("score, name", SCORES)
def test_a_nan_sample_is_refused_naming_the_degraded_signal(score: Score, name: str) -> None:
    wave = vowel()
    broken = wave.copy()
    broken[1000] = np.nan
    with pytest.raises(QualityScoreError, match=rf"{name}: non-finite samples in the degraded signal"):
        score(wave, broken, SR)


@pytest.mark.parametrize("score, name", SCORES)
def test_a_stereo_signal_is_refused_as_not_mono(score: Score, name: str) -> None:
    wave = vowel()
    with pytest.raises(QualityScoreError, match=rf"{name}: the reference signal must be 1-D"):
        score(np.stack([wave, wave]), wave, SR)


def test_real_time_factor_is_compute_seconds_per_second_of_audio() -> None:
    assert real_time_factor(0.5, SR, SR) == 0.5
    assert real_time_factor(2.0, SR // 2, SR) == 4.0


def test_real_time_factor_refuses_zero_samples() -> None:
    with pytest.raises(ValueError, match="no audio"):
        real_time_factor(1.0, 0, SR)
