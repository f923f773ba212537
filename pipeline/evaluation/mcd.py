"""Mel-cepstral distortion with dynamic time warping (MCD-DTW), in dB.

The usual definition: mel-cepstra of order 34 with all-pass constant 0.45 (for 22.05 kHz),
c0 (energy) excluded, MCD = 10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2) per frame pair,
averaged over the DTW path between the two utterances (which need not have equal lengths).
Both waves are silence-trimmed first (`eval.mcd_trim_top_db`) and their spectra floored 80 dB (`eval.mcd_floor_db`)
below their peak.

The mel-cepstrum of a frame is SPTK's `sp2mc`: the real cepstrum of the log power spectrum
(c0 halved) warped onto the mel scale by the all-pass frequency transform (`freqt`). Here the
power spectrum is a Hann-windowed FFT's, not WORLD's pitch-adaptive envelope (pyworld and
pysptk ship as sources to compile), so absolute values run somewhat higher than papers'
WORLD-based MCD; comparisons within Hamgara (model vs the Griffin-Lim ceiling, run vs run)
are like for like.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)


@lru_cache(maxsize=8)
def freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """The all-pass frequency warping of SPTK's `freqt` as a matrix [n_in, order + 1]: a
    cepstrum c[0..n_in-1] maps to the warped cepstrum c @ A. freqt is linear in c, so running
    its recursion on every basis vector at once gives A."""
    beta = 1.0 - alpha * alpha
    basis = np.eye(n_in)
    g = np.zeros((n_in, order + 1))
    for i in range(n_in - 1, -1, -1):
        d = g.copy()
        g[:, 0] = basis[:, i] + alpha * d[:, 0]
        if order >= 1:
            g[:, 1] = beta * d[:, 0] + alpha * d[:, 1]
        for j in range(2, order + 1):
            g[:, j] = d[:, j - 1] + alpha * (d[:, j] - g[:, j - 1])
    return g


def mel_cepstrum(
    wave: np.ndarray,
    order: int = 34,
    alpha: float = 0.45,
    floor_db: float = 80.0,
    n_fft: int = 1024,
    hop: int = 256,
) -> np.ndarray:
    """Mel-cepstra [frames, order + 1] of a mono wave (c0 included, in SPTK's convention).

    The power spectrum is floored `floor_db` below the utterance's peak bin: without a floor,
    near-empty bins (digital silence, or the band above the mel's fmax that a mel vocoder never
    produces) reach log(0) and swamp every other difference."""
    spec = np.abs(librosa.stft(np.asarray(wave, dtype=np.float64), n_fft=n_fft, hop_length=hop, window="hann")) ** 2
    floor = max(float(spec.max()), 1e-20) * 10.0 ** (-floor_db / 10.0)
    log_power = np.log(np.maximum(spec, floor)).T  # [frames, bins]
    cep = np.fft.irfft(log_power, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    cep[:, 0] /= 2.0
    return cep @ freqt_matrix(n_fft // 2 + 1, order, float(alpha))


def frame_mcd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MCD (dB) between paired frames [n, order + 1]; c0 excluded."""
    return MCD_SCALE * np.sqrt(((a[:, 1:] - b[:, 1:]) ** 2).sum(axis=1))


def mcd_dtw(reference: np.ndarray, test: np.ndarray) -> float:
    """MCD (dB) of two mel-cepstrum sequences, averaged over their DTW path (Euclidean cost
    on c1..cD, which is the per-frame MCD up to its constant)."""
    if len(reference) == 0 or len(test) == 0:
        raise ValueError("mcd_dtw: an empty utterance has no mel-cepstrum")
    _, path = librosa.sequence.dtw(X=reference[:, 1:].T, Y=test[:, 1:].T, metric="euclidean")
    return float(frame_mcd(reference[path[:, 0]], test[path[:, 1]]).mean())


def trim_silence(wave: np.ndarray, top_db: float) -> np.ndarray:
    """The wave without leading/trailing silence (quieter than `top_db` below its peak,
    `eval.mcd_trim_top_db`), so silence does not pad the average."""
    trimmed, _ = librosa.effects.trim(
        np.asarray(wave, dtype=np.float32), top_db=top_db, frame_length=1024, hop_length=256
    )
    return trimmed if len(trimmed) else np.asarray(wave, dtype=np.float32)
