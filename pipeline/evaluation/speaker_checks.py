"""`hamgara doctor`'s checks per speaker, from validate's manifest: how much audio each speaker
has, whether one speaker's recordings mix sample rates, and whether a speaker was recorded at
a very different level from the rest. These are where multi-speaker runs go wrong quietly: the
corpus-wide figures of the other checks average a small or odd speaker away."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.verdicts import OK, WARNING, Check

# A speaker's median peak this many times below (or above) the median speaker's is "another level".
LEVEL_RATIO = 4.0


def _minutes(manifest: pd.DataFrame) -> pd.Series:
    return manifest.groupby("speaker")["duration"].sum().sort_values() / 60


def check_speaker_minutes(manifest: pd.DataFrame, min_minutes: float) -> Check:
    """Minutes of accepted audio per speaker; a speaker under `min_minutes` is a warning."""
    minutes = _minutes(manifest)
    listing = ", ".join(f"{name} {m:.1f} min" for name, m in minutes.items())
    if len(minutes) == 1:
        return Check("data", "minutes per speaker", OK, f"one speaker: {listing}")
    small = minutes[minutes < min_minutes]
    if small.empty:
        return Check("data", "minutes per speaker", OK, f"{len(minutes)} speakers: {listing}")
    return Check(
        "data",
        "minutes per speaker",
        WARNING,
        f"{len(small)} of {len(minutes)} speakers have under {min_minutes:g} min of audio: "
        + ", ".join(f"{name} {m:.1f} min" for name, m in small.items())
        + f" (all: {listing})",
        "a small speaker is seen as often as its share of the corpus: record more of it, or fine-tune a base model "
        "on it (train.init_from); train.speaker_balance (0.5 tempers the mix, 1 gives each speaker the same share) "
        "is an experiment to measure against the plain sampler, not a sure fix (dvc exp run, then dvc metrics diff; "
        "docs/measurements.md, 'The multi-speaker demo, measured')",
    )


def check_speaker_rates(manifest: pd.DataFrame) -> Check:
    """A speaker whose recordings come at more than one sample rate (two recording set-ups)."""
    rates = manifest.groupby("speaker")["sample_rate"].unique()
    mixed = {name: sorted(int(r) for r in r_) for name, r_ in rates.items() if len(r_) > 1}
    per_speaker = ", ".join(f"{name} {'/'.join(str(int(r)) for r in sorted(r_))} Hz" for name, r_ in rates.items())
    if not mixed:
        return Check("data", "sample rate per speaker", OK, f"one rate per speaker: {per_speaker}")
    return Check(
        "data",
        "sample rate per speaker",
        WARNING,
        "speakers recorded at several rates: "
        + ", ".join(f"{name} ({', '.join(map(str, r))} Hz)" for name, r in mixed.items()),
        "precompute resamples every file; listen to the low-rate ones: band-limited audio teaches the model "
        "a duller version of that speaker",
    )


def check_speaker_levels(manifest: pd.DataFrame) -> Check:
    """A speaker whose recordings all sit at another level: median peak far from the median speaker's."""
    peaks = manifest.groupby("speaker")["peak"].median()
    if len(peaks) == 1:
        return Check("data", "level per speaker", OK, f"one speaker: median peak {float(peaks.iloc[0]):.2f}")
    typical = float(np.median(peaks.to_numpy()))
    ratio = peaks / max(typical, 1e-9)
    odd = ratio[(ratio < 1 / LEVEL_RATIO) | (ratio > LEVEL_RATIO)]
    listing = ", ".join(f"{name} {float(p):.2f}" for name, p in peaks.items())
    if odd.empty:
        return Check("data", "level per speaker", OK, f"median peak per speaker: {listing}")
    return Check(
        "data",
        "level per speaker",
        WARNING,
        ", ".join(f"{name} peaks at {float(r):.2f}x the median speaker's" for name, r in odd.items())
        + f" (median peak per speaker: {listing})",
        "precompute peak-normalizes each file, which lifts a quiet speaker's noise floor with its voice: check "
        "those recordings for hiss and hum, or denoise them before training",
    )


def check_speakers(manifest: pd.DataFrame | None, min_minutes: float) -> list[Check]:
    """Every per-speaker check; none without a manifest (the validation check reports that)."""
    if manifest is None:
        return []
    return [check_speaker_minutes(manifest, min_minutes), check_speaker_rates(manifest), check_speaker_levels(manifest)]
