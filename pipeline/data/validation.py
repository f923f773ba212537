"""Validate every corpus row: measure its audio, check it against the schema, decide, count.

Library code of the validate stage: `validate_corpus` returns the accepted rows (the
manifest), the rejected rows with their reasons (pipeline/data/rejections.py), the rows
accepted with a fix-up (warnings) and the counts; `write_outputs` writes them.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from model.text import normalize_text, unsupported_chars
from model.textnorm import spell_out
from pipeline.common.atomic import atomic_path, write_json
from pipeline.common.runtime import process_pool, worker_count
from pipeline.config import DataConfig, ValidateConfig
from pipeline.data.audio import audio_facts, dc_to_remove, missing_facts
from pipeline.data.metadata import HEADER_ATTR, read_metadata
from pipeline.data.rejections import DUPLICATE_TEXT, reason_detail, reason_of
from pipeline.data.schema import failed_checks

MIN_SPEECH_SECONDS = 0.05  # below this a speaking rate is meaningless

MANIFEST_COLUMNS = [
    "id",
    "line",
    "text",
    "normalized",
    "speaker",
    "language",
    "audio",
    "channels",
    "sample_rate",
    "duration",
    "peak",
    "clip_share",
    "lead_silence",
    "trail_silence",
    "chars_per_second",
    "rate_ratio",
]
# The DC offset precompute subtracts per row (audio.dc_to_remove; 0.0: none). Written only when
# some row has one, so the manifest of a corpus without the fault keeps its bytes, and with them
# the fingerprint of its features store and aligner cache (and DVC's hash of the manifest).
DC_COLUMN = "dc_correction"
# Rows the corpus's unseen.txt holds out of training and validation (precompute gives them the
# UNSEEN split). Written only when some row is held out, for the same reason as DC_COLUMN.
UNSEEN_COLUMN = "unseen"
# Rows the corpus's validation.txt sends to the validation split whatever their hash draws.
# Written only when some row is listed, for the same reason as DC_COLUMN.
VALIDATION_COLUMN = "validation"
# The warning of a row whose normalized_text was empty and whose text, spelled out, reads other
# than as written: training on words nobody wrote down must not happen silently.
NORMALIZED_FROM_TEXT = "normalized_from_text"


@dataclass
class ValidationResult:
    """What validation decided: accepted rows, rejected rows with reasons, warnings, counts."""

    manifest: pd.DataFrame
    rejected: pd.DataFrame
    warnings: pd.DataFrame
    report: dict[str, Any]


def _facts_job(args: tuple[str, ValidateConfig]) -> dict[str, Any]:
    return audio_facts(*args)


# The audio facts of a row whose id cannot name a file (its bad_id says why): none, the file not
# looked for, since the filesystem refuses some such names with an error instead of answering.
UNNAMED_FACTS = missing_facts("audio not looked for: the id cannot name a file")


def _measure_all(jobs: list[tuple[str, ValidateConfig]], workers: int) -> list[dict[str, Any]]:
    """Every file's facts, in order: in worker processes, or in this one for a single worker
    (no pool to start, and librosa's JIT warm-up paid once)."""
    progress = {"total": len(jobs), "desc": "validate", "unit": "file"}
    if workers == 1:
        return list(tqdm(map(_facts_job, jobs), **progress))
    with process_pool(workers, preload=["pipeline.data.validation"]) as pool:
        return list(tqdm(pool.imap(_facts_job, jobs, chunksize=8), **progress))


def _speaking_rates(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Characters per second of speech, and its ratio to the median of the row's speaker."""
    letters = df["normalized"].map(lambda t: sum(ch.isalpha() for ch in t)).astype(float)
    speech = df["duration"] - df["lead_silence"] - df["trail_silence"]
    rate = letters / speech.where(speech > MIN_SPEECH_SECONDS)
    # A truncated file lacks the audio of its last words: its rate says nothing of its transcript.
    rate = rate.where((df["status"] == "ok") & (letters > 0) & (df["missing_frames"] == 0))
    # Duplicated ids point at one wav; keep them out of the median.
    usable = rate.where(df["duplicate_of"] == "")
    median = usable.groupby(df["speaker"]).transform("median")
    return rate, rate / median


def _first_seen(values: pd.Series, label: pd.Series) -> pd.Series:
    """For each row, the label of the earlier row with the same value, or ''."""
    first: dict[Any, Any] = {}
    out = []
    for v, lab in zip(values, label):
        if v in first:
            out.append(str(first[v]))
        else:
            first[v] = lab
            out.append("")
    return pd.Series(out, index=values.index)


@functools.lru_cache(maxsize=1)
def espeak_voices() -> frozenset[str] | None:
    """The language codes espeak-ng has a voice for, exactly as phonemizer's backend checks a
    code before refusing it (`en-us` is one, `en` is not); asked once per run. None when
    espeak-ng is not installed: then no code can be judged, and precompute's own error says
    how to install it."""
    try:
        from phonemizer.backend import EspeakBackend

        return frozenset(EspeakBackend.supported_languages())
    except (ImportError, RuntimeError, OSError):
        return None


def unknown_languages(languages: pd.Series, frontend: str) -> pd.Series:
    """Per row, its language code when the phonemes frontend cannot voice it, else ''. The
    characters frontend reads any language, so it leaves every code alone."""
    voices = espeak_voices() if frontend == "phonemes" else None
    if voices is None:
        return pd.Series("", index=languages.index)
    return languages.map(lambda lang: "" if lang in voices else str(lang))


def measure_rows(corpus: Path, cfg: DataConfig, workers: int, frontend: str = "phonemes") -> pd.DataFrame:
    """The corpus's rows with their audio facts (measured in parallel), normalized text,
    unsupported characters, unknown languages, duplicates and speaking rates: everything the
    schema checks. A skipped header line stays in the table's attrs (metadata.HEADER_ATTR)."""
    df = read_metadata(corpus, cfg)
    attrs = dict(df.attrs)
    named = (df["id_problem"] == "").tolist()
    measured = iter(_measure_all([(p, cfg.validate) for p, ok in zip(df["audio"], named) if ok], worker_count(workers)))
    facts = [next(measured) if ok else UNNAMED_FACTS for ok in named]
    df = pd.concat([df, pd.DataFrame(facts, index=df.index)], axis=1)
    df.attrs.update(attrs)
    # A given normalized_text is the transcript, kept as written (only tidied); an empty one
    # means the text is said as it reads, numbers and abbreviations spelled out.
    df["normalized"] = [
        normalize_text(t) if given else spell_out(t, lang)
        for t, given, lang in zip(df["normalized_text"], df["normalized_given"], df["language"])
    ]
    df["unsupported"] = [unsupported_chars(t, lang) for t, lang in zip(df["normalized"], df["language"])]
    df["unknown_language"] = unknown_languages(df["language"], frontend)
    df["duplicate_of"] = _first_seen(df["id"], df["line"])
    nonempty = df["normalized"].str.lower().where(df["normalized"] != "", other=None)
    df["duplicate_text_of"] = _first_seen(
        nonempty.fillna(pd.Series([f"\0{i}" for i in df.index], index=df.index)), df["id"]
    )
    df["chars_per_second"], df["rate_ratio"] = _speaking_rates(df)
    return df


def _rejected(df: pd.DataFrame, failures: dict[int, list[str]], vcfg: ValidateConfig) -> pd.DataFrame:
    """One row per rejected corpus row: its reasons and their details."""
    rows = []
    for idx, checks in sorted(failures.items()):
        row = df.loc[idx]
        reasons = [reason_of(c, row["status"]) for c in checks]
        rows.append(
            {
                "id": row["id"],
                "line": int(row["line"]),
                "audio": row["audio"],
                "reasons": ";".join(reasons),
                "details": " | ".join(reason_detail(r, row, vcfg) for r in reasons),
            }
        )
    return pd.DataFrame(rows, columns=["id", "line", "audio", "reasons", "details"])


def validate_corpus(
    corpus: Path, cfg: DataConfig, target_sample_rate: int, workers: int, frontend: str = "phonemes"
) -> ValidationResult:
    """Read the corpus, measure every audio file, validate every row, decide and count.

    `frontend` is features.frontend: with `phonemes` a language code espeak-ng cannot voice is
    rejected here, before precompute would stop on it.
    """
    t0 = time.perf_counter()
    df = measure_rows(corpus, cfg, workers, frontend)
    failures = failed_checks(df, cfg.validate)
    rejected = _rejected(df, failures, cfg.validate)
    accepted = df.drop(index=list(failures)).copy()
    accepted[DC_COLUMN] = [
        dc_to_remove(float(dc), float(peak), cfg.validate) for dc, peak in zip(accepted["dc_offset"], accepted["peak"])
    ]
    warnings = _warnings(accepted, target_sample_rate, cfg.validate, df.attrs.get(HEADER_ATTR))
    report = _report(df, accepted, rejected, warnings)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    columns = [*MANIFEST_COLUMNS, DC_COLUMN] if accepted[DC_COLUMN].any() else list(MANIFEST_COLUMNS)
    if accepted[UNSEEN_COLUMN].any():
        columns.append(UNSEEN_COLUMN)
        report["unseen"] = int(accepted[UNSEEN_COLUMN].sum())
    if accepted[VALIDATION_COLUMN].any():
        columns.append(VALIDATION_COLUMN)
        report["validation_listed"] = int(accepted[VALIDATION_COLUMN].sum())
    manifest = accepted[columns].reset_index(drop=True)
    manifest["channels"] = manifest["channels"].astype(int)
    manifest["sample_rate"] = manifest["sample_rate"].astype(int)
    return ValidationResult(manifest, rejected, warnings, report)


def _report(df: pd.DataFrame, accepted: pd.DataFrame, rejected: pd.DataFrame, warnings: pd.DataFrame) -> dict:
    """The counts of reports/validation.json (less the run time)."""
    by_reason: dict[str, int] = {}
    for reasons in rejected["reasons"]:
        for r in reasons.split(";"):
            by_reason[r] = by_reason.get(r, 0) + 1
    rates = accepted["sample_rate"].astype(int).value_counts().sort_index()
    return {
        "rows": len(df),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejected_share": round(len(rejected) / len(df), 4),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "warnings": len(warnings),
        "warnings_by_kind": {k: int(v) for k, v in warnings["kind"].value_counts().sort_index().items()},
        "accepted_hours": round(float(accepted["duration"].sum()) / 3600, 4),
        "speakers": int(accepted["speaker"].nunique()),
        "languages": sorted(accepted["language"].unique().tolist()),
        "sample_rates": {str(k): int(v) for k, v in rates.items()},
        "median_chars_per_second": round(float(np.nanmedian(accepted["chars_per_second"])), 3)
        if len(accepted)
        else 0.0,
    }


def _warnings(
    accepted: pd.DataFrame, target_sr: int, vcfg: ValidateConfig, header: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Rows accepted with a fix-up precompute makes, or with something a person may want to see;
    first a skipped header line of metadata.csv (no id: it is not a row)."""
    rows = []
    if header is not None:
        rows.append(
            ("", header["line"], "header_line", f"line {header['line']} {header['text']!r} names the columns; skipped")
        )
    for _, r in accepted.iterrows():
        rows.extend((r["id"], r["line"], kind, detail) for kind, detail in _row_warnings(r, target_sr, vcfg))
    return pd.DataFrame(rows, columns=["id", "line", "kind", "detail"])


def _row_warnings(r: pd.Series, target_sr: int, vcfg: ValidateConfig) -> list[tuple[str, str]]:
    """(kind, detail) of each warning of one accepted row. A row whose empty normalized_text was
    filled from its text is listed only when spelling out changed the words: a two-column corpus
    without numbers would otherwise have every row listed, burying the warnings that matter."""
    out = []
    if r["channels"] > 1:
        out.append(("multichannel", f"{int(r['channels'])} channels; downmixed to mono in precompute"))
    if r["sample_rate"] != target_sr:
        out.append(("resampled", f"{int(r['sample_rate'])} Hz; resampled to {target_sr} Hz in precompute"))
    if r["duplicate_text_of"] and not vcfg.reject_duplicate_text:
        out.append((DUPLICATE_TEXT, f"same transcript as {r['duplicate_text_of']}"))
    over_range = r["peak"] > vcfg.max_peak
    # An over-range file's clip share counts samples at its own peak, and its peak sample is
    # always one: "some clipping" would call a level fault clipping.
    if r["clip_share"] > 0 and not over_range:
        out.append(("some_clipping", f"{r['clip_share']:.3%} of samples clipped (under the limit)"))
    if over_range:
        out.append(
            (
                "over_range",
                f"peak {r['peak']:.2f} is over full scale (max_peak {vcfg.max_peak}): a level, not clipping; "
                "precompute peak-normalizes it (features.peak_norm), rescale the file for any other use",
            )
        )
    if not r["normalized_given"] and r["normalized"] != normalize_text(r["text"]):
        out.append((NORMALIZED_FROM_TEXT, f'normalized_text was empty; spoken as: "{r["normalized"]}"'))
    if r[DC_COLUMN]:
        out.append(
            (
                "dc_offset",
                f"DC offset {r['dc_offset']:+.4f}, {abs(r['dc_offset']) / r['peak']:.1%} of the peak "
                f"{r['peak']:.2f} (max_dc_offset {vcfg.max_dc_offset} of it); "
                "precompute subtracts it before trimming silence",
            )
        )
    return out


def write_outputs(result: ValidationResult, manifest_path: Path, reports: Path) -> None:
    """Write the manifest and the reports, each atomically."""
    with atomic_path(manifest_path) as tmp:
        result.manifest.to_parquet(tmp, index=False)
    with atomic_path(reports / "rejected.csv") as tmp:
        result.rejected.to_csv(tmp, index=False)
    with atomic_path(reports / "warnings.csv") as tmp:
        result.warnings.to_csv(tmp, index=False)
    write_json(reports / "validation.json", result.report)
