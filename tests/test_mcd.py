"""Mel-cepstral distortion with DTW: zero for identical audio, growing with distortion."""

from __future__ import annotations

import numpy as np

from helpers import speech_like
from pipeline.evaluation.mcd import MCD_SCALE, freqt_matrix, mcd_dtw, mel_cepstrum

SR = 22050


def test_identical_audio_has_zero_mcd() -> None:
    wave = speech_like(1.0, SR, seed=1)
    c = mel_cepstrum(wave)
    assert mcd_dtw(c, c) == 0.0


def test_mcd_grows_with_the_noise_added() -> None:
    wave = speech_like(1.0, SR, seed=2)
    ref = mel_cepstrum(wave)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(wave)).astype(np.float32)
    scores = [mcd_dtw(ref, mel_cepstrum(wave + level * noise)) for level in (0.001, 0.01, 0.1)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_dtw_forgives_a_time_stretch_that_frame_by_frame_comparison_would_not() -> None:
    wave = speech_like(1.0, SR, seed=3)
    ref = mel_cepstrum(wave)
    slow = np.repeat(ref, 2, axis=0)  # every frame twice: same content, double length
    assert mcd_dtw(ref, slow) < 1e-9


def test_frequency_warping_with_zero_alpha_keeps_the_cepstrum() -> None:
    a = freqt_matrix(8, 5, 0.0)
    assert np.allclose(a, np.eye(8)[:, :6])


def test_mcd_uses_the_standard_constant_and_excludes_c0() -> None:
    ref = np.zeros((1, 35))
    test = np.zeros((1, 35))
    test[0, 0] = 5.0  # energy only: not counted
    test[0, 1] = 0.1
    assert np.isclose(mcd_dtw(ref, test), 10 / np.log(10) * np.sqrt(2 * 0.01))
    assert np.isclose(MCD_SCALE, 10 / np.log(10) * np.sqrt(2))
