"""The pandera schema every corpus row must pass: metadata plus its audio facts.

Each check is named for the rejection reason it stands for, so a failed check *is* the
reason written to reports/rejected.csv. The bounds come from params.yaml `data.validate`,
which is why the schema is built by a function rather than declared once.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from pipeline.config import ValidateConfig
from pipeline.data.rejections import (
    AUDIO_CHECK,
    BAD_ID,
    CLIPPED,
    DUPLICATE_ID,
    DUPLICATE_TEXT,
    EMPTY_TEXT,
    EXCESS_SILENCE,
    NON_FINITE,
    RATE_OUTLIER,
    SILENT,
    TOO_LONG,
    TOO_SHORT,
    TRUNCATED,
    UNKNOWN_LANGUAGE,
    UNSUPPORTED_CHARS,
)


class CorpusColumns(pa.DataFrameModel):
    """The columns a corpus row has once its audio facts are measured; the checks come from `row_schema`."""

    line: Series[int] = pa.Field(ge=1)
    id: Series[str]
    id_problem: Series[str]
    normalized: Series[str]
    status: Series[str]
    duration: Series[float] = pa.Field(nullable=True)
    peak: Series[float] = pa.Field(nullable=True)
    clip_share: Series[float] = pa.Field(nullable=True)
    silence_share: Series[float] = pa.Field(nullable=True)
    missing_frames: Series[float] = pa.Field(nullable=True)
    non_finite: Series[float] = pa.Field(nullable=True)
    unsupported: Series[str]
    unknown_language: Series[str]
    duplicate_of: Series[str]
    duplicate_text_of: Series[str]
    rate_ratio: Series[float] = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = True


def _is_zero(cls: type, s: pd.Series) -> pd.Series:
    """The check of a count of faulty things (missing frames, non-finite samples): none."""
    return s == 0


def _is_blank(cls: type, s: pd.Series) -> pd.Series:
    """The check of a column that names what is wrong (characters, a language, a line): nothing."""
    return s == ""


def row_schema(cfg: ValidateConfig) -> type[pa.DataFrameModel]:
    """A DataFrameModel whose check names are the rejection reasons (pipeline/data/rejections.py)."""

    class CorpusRow(CorpusColumns):
        _truncated = pa.check("missing_frames", name=TRUNCATED)(_is_zero)
        _non_finite = pa.check("non_finite", name=NON_FINITE)(_is_zero)
        _unsupported = pa.check("unsupported", name=UNSUPPORTED_CHARS)(_is_blank)
        _unknown_language = pa.check("unknown_language", name=UNKNOWN_LANGUAGE)(_is_blank)
        _dup_id = pa.check("duplicate_of", name=DUPLICATE_ID)(_is_blank)
        _bad_id = pa.check("id_problem", name=BAD_ID)(_is_blank)

        @pa.check("status", name=AUDIO_CHECK)
        def _audio(cls, s: pd.Series) -> pd.Series:
            return s == "ok"

        @pa.check("duration", name=TOO_SHORT)
        def _too_short(cls, s: pd.Series) -> pd.Series:
            return s >= cfg.min_duration

        @pa.check("duration", name=TOO_LONG)
        def _too_long(cls, s: pd.Series) -> pd.Series:
            return s <= cfg.max_duration

        @pa.check("peak", name=SILENT)
        def _silent(cls, s: pd.Series) -> pd.Series:
            return s >= cfg.min_peak

        @pa.check("clip_share", name=CLIPPED)
        def _clipped(cls, s: pd.Series) -> pd.Series:
            return s <= cfg.max_clip_share

        @pa.check("silence_share", name=EXCESS_SILENCE)
        def _silence(cls, s: pd.Series) -> pd.Series:
            return s <= cfg.max_silence_share

        @pa.check("normalized", name=EMPTY_TEXT)
        def _empty(cls, s: pd.Series) -> pd.Series:
            return s.str.strip().str.len() > 0

        @pa.check("duplicate_text_of", name=DUPLICATE_TEXT)
        def _dup_text(cls, s: pd.Series) -> pd.Series:
            return s == "" if cfg.reject_duplicate_text else pd.Series(True, index=s.index)

        @pa.check("rate_ratio", name=RATE_OUTLIER)
        def _rate(cls, s: pd.Series) -> pd.Series:
            f = cfg.rate_outlier_factor
            return (s <= f) & (s >= 1.0 / f)

    return CorpusRow


def _check_names(model: type[pa.DataFrameModel]) -> set[str]:
    return {check.name for column in model.to_schema().columns.values() for check in column.checks}


def schema_checks(cfg: ValidateConfig) -> set[str]:
    """The names of the rejection checks `row_schema(cfg)` runs (not the columns' own bounds)."""
    return _check_names(row_schema(cfg)) - _check_names(CorpusColumns)


def failed_checks(df: pd.DataFrame, cfg: ValidateConfig) -> dict[int, list[str]]:
    """Validate all rows lazily; map each failing row's index to the names of its failed checks."""
    try:
        row_schema(cfg).validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        cases = e.failure_cases
        structural = cases[cases["index"].isna()]
        if len(structural):
            raise ValueError(f"corpus table does not match the schema: {structural.to_dict('records')}") from None
        out: dict[int, list[str]] = {}
        for idx, check in zip(cases["index"], cases["check"]):
            names = out.setdefault(int(idx), [])
            if check not in names:
                names.append(str(check))
        return out
    return {}
