"""doctor's per-speaker data checks: each planted fault (a speaker with too little audio, one
recorded at two rates, one at another level) is warned about by name; a clean mix is ok."""

from __future__ import annotations

import pandas as pd

from pipeline.evaluation.speaker_checks import (
    check_speaker_levels,
    check_speaker_minutes,
    check_speaker_rates,
    check_speakers,
)
from pipeline.evaluation.verdicts import OK, WARNING


def manifest(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """(speaker, sample_rate, seconds, peak) per utterance."""
    return pd.DataFrame(rows, columns=["speaker", "sample_rate", "duration", "peak"])


# The shape of LJSpeech + VCTK: one big speaker at 22.05 kHz, two small ones at 48 kHz.
CLEAN = manifest(
    [("lj", 22050, 6.0, 0.9)] * 200 + [("p301", 48000, 4.0, 0.7)] * 160 + [("p302", 48000, 4.0, 0.8)] * 160
)


def test_a_clean_mix_is_ok_on_every_speaker_check() -> None:
    assert [c.verdict for c in check_speakers(CLEAN, min_minutes=10)] == [OK, OK, OK]


def test_a_speaker_under_the_minimum_is_warned_about_by_name() -> None:
    small = pd.concat([CLEAN, manifest([("p999", 48000, 4.0, 0.8)] * 30)])  # 2 minutes
    check = check_speaker_minutes(small, min_minutes=10)
    assert check.verdict == WARNING
    assert "p999 2.0 min" in check.evidence and "p301" not in check.evidence.split("(all:")[0]
    assert "train.speaker_balance" in check.fix


def test_a_speaker_recorded_at_two_rates_is_warned_about() -> None:
    mixed = pd.concat([CLEAN, manifest([("p301", 16000, 4.0, 0.7)] * 5)])
    check = check_speaker_rates(mixed)
    assert check.verdict == WARNING and "p301 (16000, 48000 Hz)" in check.evidence and "lj" not in check.evidence


def test_a_speaker_recorded_at_another_level_is_warned_about() -> None:
    quiet = pd.concat([CLEAN, manifest([("p303", 48000, 4.0, 0.1)] * 160)])  # a tenth of the others' peaks
    check = check_speaker_levels(quiet)
    assert check.verdict == WARNING and check.evidence.startswith("p303 peaks at 0.1")


def test_one_speaker_is_ok_and_says_so() -> None:
    checks = check_speakers(manifest([("demo", 22050, 3.5, 0.3)] * 100), min_minutes=10)
    assert [c.verdict for c in checks] == [OK, OK, OK] and "one speaker" in checks[0].evidence


def test_no_manifest_adds_no_speaker_checks() -> None:
    assert check_speakers(None, min_minutes=10) == []


def test_doctor_explains_a_collapsed_style_latent_by_the_speaker_count() -> None:
    from pipeline.evaluation.model_diagnosis import kl_collapse_explanation

    assert "harmless for one voice" in kl_collapse_explanation(1)
    several = kl_collapse_explanation(3)
    assert "3 speakers" in several and "speaker embedding already says who speaks" in several
    assert "harmless" not in several
