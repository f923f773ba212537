"""Perceptual-quality scores for comparing vocoders by copy synthesis: a recording against the same
recording re-synthesized from its own mel.

PESQ-WB (ITU-T P.862.2) and ESTOI (Jensen & Taal 2016) are the scores vocoder papers report, so
Hamgara's numbers can be read against theirs only if they come from the same code: `pesq` wraps the
ITU reference C implementation and `pystoi` reproduces the authors' MATLAB code. This module adds only what
those libraries leave to the caller: one sample rate, one length, and a refusal (`QualityScoreError`)
where they would crash, print a number that means nothing, or warn and return a placeholder.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pesq
import pystoi
import torch
import torchaudio.functional as AF

PESQ_NAME = "PESQ-WB"
ESTOI_NAME = "ESTOI"

# P.862.2 is defined on 16 kHz audio only; any other rate would be a different measure.
PESQ_RATE = 16000
# pesqmain.h refuses "Reference or Degraded below 1/4 second" (Fs / 4 samples).
PESQ_MIN_SECONDS = 0.25

# pystoi 0.4.1 works at 10 kHz with 256-sample frames hopped by 128 and needs 30 frames for one
# intermediate-intelligibility segment. It frames the signal twice (to drop silent frames, then for the
# STFT), losing a frame each time, so it needs 31 frames at first: more than 256 + 30 * 128 = 4096
# samples at 10 kHz. Shorter, it warns and returns 1e-5 (or crashes on an empty reduction).
ESTOI_MIN_SECONDS = 4097 / 10000
# pystoi drops frames of the reference more than this many dB below its loudest before scoring.
ESTOI_DYNAMIC_RANGE_DB = 40


class QualityScoreError(ValueError):
    """A quality score cannot be computed for these signals; the message names the score and why."""


def _checked(signal: np.ndarray, which: str, score: str) -> np.ndarray:
    """The signal as float64, refused with a message naming `which` signal: the libraries would
    otherwise fail deep inside C or numpy with no hint which input was at fault."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise QualityScoreError(f"{score}: the {which} signal must be 1-D (mono); got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise QualityScoreError(
            f"{score}: non-finite samples in the {which} signal ({int(bad.sum())} NaN/inf, the first at sample {first})"
        )
    return x


def _same_length(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int, score: str
) -> tuple[np.ndarray, np.ndarray]:
    """Both signals checked and cut to the shorter. A vocoder's output length is a whole number of
    hops, so it differs from the recording's by a fraction of a frame; copy synthesis keeps the two
    time-aligned from the start, and the tail one of them lacks has nothing to be compared with."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise QualityScoreError(f"{score}: the sample rate must be a positive whole number of Hz; got {sample_rate!r}")
    ref = _checked(reference, "reference", score)
    deg = _checked(degraded, "degraded", score)
    n = min(len(ref), len(deg))
    ref, deg = ref[:n], deg[:n]
    # Checked after the cut: a degraded signal whose sound all lies beyond the reference's end is
    # silent where it is compared. PESQ has no value for silence (the library returns NaN or "no
    # utterances"), and ESTOI's would be a correlation with the machine-epsilon dither pystoi adds: noise.
    for which, x in (("reference", ref), ("degraded", deg)):
        if n and not np.any(x):
            raise QualityScoreError(f"{score}: the {which} signal is digital silence; there is nothing to score")
    return ref, deg


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (MOS-LQO, about 1.0 to 4.64) of `degraded` against `reference`.

    Both are resampled to 16 kHz here because P.862.2 is defined only there, which is also how papers
    report PESQ-WB for 22.05 kHz vocoders. PESQ aligns the two in time itself, so a small delay costs
    little score."""
    ref, deg = _same_length(reference, degraded, sample_rate, PESQ_NAME)
    ref16 = AF.resample(torch.from_numpy(ref.astype(np.float32)), int(sample_rate), PESQ_RATE).numpy()
    deg16 = AF.resample(torch.from_numpy(deg.astype(np.float32)), int(sample_rate), PESQ_RATE).numpy()
    # Checked here rather than left to the library: its BufferTooShortError names neither the limit's
    # unit nor what it got, and an empty array would crash its C wrapper outright.
    if len(ref16) < PESQ_RATE * PESQ_MIN_SECONDS:
        raise QualityScoreError(
            f"{PESQ_NAME} needs at least {PESQ_MIN_SECONDS:.2f} s of audio in both signals; got {len(ref) / sample_rate:.2f} s"
        )
    try:
        value = pesq.pesq(PESQ_RATE, ref16, deg16, "wb")
    except pesq.NoUtterancesError as e:
        raise QualityScoreError(
            f"{PESQ_NAME}: no utterances detected in the reference or degraded signal (too quiet for "
            f"P.862's voice-activity detector)"
        ) from e
    except (pesq.PesqError, ValueError) as e:
        # The library reports a NaN score as a ValueError from its error-code lookup.
        raise QualityScoreError(f"{PESQ_NAME}: the reference implementation failed: {e}") from e
    value = float(value)
    if not math.isfinite(value):
        raise QualityScoreError(f"{PESQ_NAME}: the reference implementation returned {value}")
    return value


def estoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (about 0 to 1) of `degraded` against `reference`.

    The extended variant because plain STOI was built for additive, stationary noise and misjudges
    distortions that fluctuate with the signal, as a vocoder's do. Unlike PESQ, (E)STOI does not align
    the signals in time: copy synthesis starts them together, but a delayed output scores lower than
    it sounds."""
    ref, deg = _same_length(reference, degraded, sample_rate, ESTOI_NAME)
    seconds = len(ref) / sample_rate
    # Refused before the call because pystoi crashes on an empty reduction (under one frame) or warns
    # and returns 1e-5, which a table would show as a score.
    if seconds < ESTOI_MIN_SECONDS:
        raise QualityScoreError(
            f"{ESTOI_NAME} needs at least {ESTOI_MIN_SECONDS:.2f} s of audio in both signals; got {seconds:.2f} s"
        )
    with warnings.catch_warnings():
        # Long enough but mostly quiet: pystoi counts frames after dropping the quiet ones, so the
        # same shortfall shows up only as its warning; made an error so that it cannot pass as 1e-5.
        warnings.filterwarnings("error", message="Not enough STFT frames", category=RuntimeWarning)
        try:
            value = pystoi.stoi(ref, deg, sample_rate, extended=True)
        except RuntimeWarning as e:
            raise QualityScoreError(
                f"{ESTOI_NAME} needs at least {ESTOI_MIN_SECONDS:.2f} s of speech in the reference within "
                f"{ESTOI_DYNAMIC_RANGE_DB} dB of its loudest frame; this {seconds:.2f} s signal has less"
            ) from e
    value = float(value)
    if not math.isfinite(value):
        raise QualityScoreError(f"{ESTOI_NAME}: pystoi returned {value}")
    return value


def real_time_factor(seconds_spent: float, samples: int, sample_rate: int) -> float:
    """Seconds of compute per second of audio produced: below 1 is faster than real time. Per second
    of audio rather than per utterance, so that vocoders timed on different sentences compare."""
    if samples <= 0:
        raise ValueError(f"real_time_factor: no audio to divide by ({samples} samples)")
    if sample_rate <= 0:
        raise ValueError(f"real_time_factor: the sample rate must be positive; got {sample_rate}")
    if seconds_spent < 0:
        raise ValueError(f"real_time_factor: negative time spent ({seconds_spent} s); the clock went backwards")
    return seconds_spent / (samples / sample_rate)
