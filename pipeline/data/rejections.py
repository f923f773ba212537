"""Every reason validate can reject a row for, and what the user can do about it: the one list
that the schema, validate's reports, doctor and the README follow."""

from __future__ import annotations

# What to do about each rejection reason.
FIXES = {
    "missing_audio": "restore the files or drop the rows from metadata.csv",
    "unreadable_audio": "re-export the files as PCM wav/flac",
    "empty_audio": "re-export or drop the rows",
    "too_short": "drop them or lower data.validate.min_duration",
    "too_long": "split the recordings, or raise data.validate.max_duration if they fit the model",
    "silent": "re-record or drop them: silence teaches the model nothing",
    "clipped": "re-record at a lower gain; clipped audio becomes buzzy speech",
    "excess_silence": "trim leading/trailing silence before training",
    "empty_text": "fill in the transcripts",
    "unsupported_chars": "spell numbers and symbols out in normalized_text",
    "duplicate_id": "give every row a unique id",
    "duplicate_text": "keep one recording per text, or turn data.validate.reject_duplicate_text off",
    "rate_outlier": "listen: the transcript probably does not match the audio",
    "bad_id": "ids may hold letters, digits, _ and - only",
}
