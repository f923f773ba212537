"""Every reason validate can reject a row for: what it means, what the user can do about it,
the schema check that finds it and the detail written beside it. The one list that the schema,
validate's reports, doctor and the table in docs/corpus.md follow (tests/test_validate.py checks them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipeline.config import ValidateConfig
from pipeline.data.metadata import MAX_ID_BYTES

# The reasons, by name; a failed schema check of the same name is the reason.
MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_AUDIO = "empty_audio"
TRUNCATED = "truncated"
NON_FINITE = "non_finite"
BAD_ID = "bad_id"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
SILENT = "silent"
CLIPPED = "clipped"
EXCESS_SILENCE = "excess_silence"
EMPTY_TEXT = "empty_text"
UNSUPPORTED_CHARS = "unsupported_chars"
UNKNOWN_LANGUAGE = "unknown_language"
DUPLICATE_ID = "duplicate_id"
DUPLICATE_TEXT = "duplicate_text"
RATE_OUTLIER = "rate_outlier"

# The schema's one check on the audio file's status; it stands for `<status>_audio`.
AUDIO_CHECK = "audio"

Detail = Callable[[pd.Series, ValidateConfig], str]


@dataclass(frozen=True)
class Reason:
    """One rejection reason: its meaning (the table in docs/corpus.md), the fix, the schema check that
    finds it, and the detail line for reports/rejected.csv of a row rejected for it."""

    meaning: str
    fix: str
    check: str
    detail: Detail


def _audio_error(row: pd.Series, cfg: ValidateConfig) -> str:
    return str(row["error"])


# The most of an id a detail quotes: a runaway id (a whole transcript pasted into the first
# column) would bury the reason; the row's line and its full id are in the same report row.
_QUOTED_ID_CHARS = 40


def _shortened(utt_id: str) -> str:
    return utt_id if len(utt_id) <= _QUOTED_ID_CHARS else utt_id[:_QUOTED_ID_CHARS] + "..."


REASONS: dict[str, Reason] = {
    MISSING_AUDIO: Reason(
        "no file under `wavs/`", "restore the files or drop the rows from metadata.csv", AUDIO_CHECK, _audio_error
    ),
    UNREADABLE_AUDIO: Reason(
        "a file soundfile cannot decode", "re-export the files as PCM wav/flac", AUDIO_CHECK, _audio_error
    ),
    EMPTY_AUDIO: Reason("no samples", "re-export or drop the rows", AUDIO_CHECK, _audio_error),
    TRUNCATED: Reason(
        "the header declares more frames than the file holds (a cut-off copy or download: its last words "
        "have no audio)",
        "copy or export the files again from their source",
        TRUNCATED,
        lambda row, cfg: (
            f"header declares {int(row['declared_frames'])} frames, {int(row['frames'])} decode "
            f"({int(row['missing_frames'])} missing, {row['missing_frames'] / row['sample_rate']:.2f} s)"
        ),
    ),
    NON_FINITE: Reason(
        "NaN or infinite samples (a float file from a broken export or effect)",
        "re-export the files from their source; no level or silence measure of such a file means anything",
        NON_FINITE,
        lambda row, cfg: (
            f"{int(row['non_finite'])} of {int(row['frames']) * int(row['channels'])} samples are NaN or infinite"
        ),
    ),
    TOO_SHORT: Reason(
        "duration below `data.validate.min_duration`",
        "drop them or lower data.validate.min_duration",
        TOO_SHORT,
        lambda row, cfg: f"{row['duration']:.2f} s < min_duration {cfg.min_duration} s",
    ),
    TOO_LONG: Reason(
        "duration above `data.validate.max_duration`",
        "split the recordings, or raise data.validate.max_duration if they fit the model",
        TOO_LONG,
        lambda row, cfg: f"{row['duration']:.2f} s > max_duration {cfg.max_duration} s",
    ),
    SILENT: Reason(
        "peak below `min_peak`",
        "re-record or drop them: silence teaches the model nothing",
        SILENT,
        lambda row, cfg: f"peak {row['peak']:.5f} < min_peak {cfg.min_peak}",
    ),
    CLIPPED: Reason(
        "more than `max_clip_share` of samples at or above `clip_level`",
        "re-record at a lower gain; clipped audio becomes buzzy speech",
        CLIPPED,
        lambda row, cfg: (
            f"{row['clip_share']:.2%} of samples at |x| >= {cfg.clip_level} (max {cfg.max_clip_share:.2%})"
        ),
    ),
    EXCESS_SILENCE: Reason(
        "leading + trailing silence (below `silence_top_db`) over `max_silence_share` of the file",
        "trim leading/trailing silence before training",
        EXCESS_SILENCE,
        lambda row, cfg: (
            f"leading {row['lead_silence']:.2f} s + trailing {row['trail_silence']:.2f} s "
            f"= {row['silence_share']:.0%} of the file (max {cfg.max_silence_share:.0%})"
        ),
    ),
    EMPTY_TEXT: Reason(
        "transcript empty or whitespace",
        "fill in the transcripts",
        EMPTY_TEXT,
        lambda row, cfg: "transcript is empty or whitespace",
    ),
    UNSUPPORTED_CHARS: Reason(
        "characters the frontend of the row's language cannot represent (digits included: spell numbers "
        "out in `normalized_text`)",
        "spell numbers and symbols out in normalized_text",
        UNSUPPORTED_CHARS,
        lambda row, cfg: (
            f"characters the {row['language']} frontend cannot represent: {row['unsupported']!r}"
            " (spell out numbers and symbols in normalized_text)"
        ),
    ),
    UNKNOWN_LANGUAGE: Reason(
        "a language code espeak-ng has no voice for (the phonemes frontend cannot read the row)",
        "use an espeak-ng voice name (`espeak-ng --voices` lists them) or set features.frontend: characters",
        UNKNOWN_LANGUAGE,
        lambda row, cfg: (
            f"espeak-ng has no voice {row['unknown_language']!r}; `espeak-ng --voices` lists the valid codes "
            "(e.g. en-us, fa), or set features.frontend: characters"
        ),
    ),
    DUPLICATE_ID: Reason(
        "the id was already used on an earlier line (the first occurrence is kept)",
        "give every row a unique id",
        DUPLICATE_ID,
        lambda row, cfg: f"id already used on line {row['duplicate_of']}",
    ),
    DUPLICATE_TEXT: Reason(
        "same transcript as an earlier row (a warning unless `reject_duplicate_text: true`)",
        "keep one recording per text, or turn data.validate.reject_duplicate_text off",
        DUPLICATE_TEXT,
        lambda row, cfg: f"same transcript as {row['duplicate_text_of']}",
    ),
    RATE_OUTLIER: Reason(
        "characters per second of speech more than `rate_outlier_factor`× from the speaker's median: the "
        "signature of a transcript that does not belong to its audio, even when its length looks plausible",
        "listen: the transcript probably does not match the audio",
        RATE_OUTLIER,
        lambda row, cfg: (
            f"{row['chars_per_second']:.1f} characters/s is {row['rate_ratio']:.2f}x the speaker "
            f"median (limit {cfg.rate_outlier_factor}x); the transcript probably does not match the audio"
        ),
    ),
    BAD_ID: Reason(
        "an id that cannot name a file: empty, with a path separator, or too long for a file name",
        f"ids may hold letters, digits, _ and - only, {MAX_ID_BYTES} bytes at most",
        BAD_ID,
        lambda row, cfg: f"id {_shortened(row['id'])!r} {row['id_problem']}",
    ),
}

# What to do about each rejection reason (doctor's advice).
FIXES = {name: reason.fix for name, reason in REASONS.items()}

# The names of the schema's checks, one or more reasons each.
CHECKS = frozenset(reason.check for reason in REASONS.values())


def reason_of(check: str, status: str) -> str:
    """The rejection reason a failed schema check stands for, given the row's audio status."""
    return f"{status}_audio" if check == AUDIO_CHECK else check


def reason_detail(reason: str, row: pd.Series, cfg: ValidateConfig) -> str:
    """The detail of one reason for one rejected row, as reports/rejected.csv shows it."""
    return REASONS[reason].detail(row, cfg)
