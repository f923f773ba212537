"""The `validate` stage: check every corpus row before anything is trusted.

Reads the corpus named by params `data.corpus`; writes data/manifest.parquet (accepted rows
with their audio facts), reports/validation.json (counts by reason, DVC metrics),
reports/rejected.csv (every rejected row and why) and reports/warnings.csv (rows accepted
with a fix-up, e.g. stereo or a foreign sample rate that precompute resamples).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from model.text import normalize_text, unsupported_chars
from pipeline.common.atomic import atomic_path, write_json
from pipeline.common.runtime import worker_count
from pipeline.common.stage import EXIT_VERDICT, run_stage
from pipeline.config import DataConfig, ValidateConfig, data_config, features_config, load_params
from pipeline.data.audio import audio_facts
from pipeline.data.metadata import read_metadata
from pipeline.data.schema import failed_checks

MIN_SPEECH_SECONDS = 0.05  # below this a speaking rate is meaningless


@dataclass
class ValidationResult:
    """What validation decided: accepted rows, rejected rows with reasons, warnings, counts."""

    manifest: pd.DataFrame
    rejected: pd.DataFrame
    warnings: pd.DataFrame
    report: dict[str, Any]


def _facts_job(args: tuple[str, ValidateConfig]) -> dict[str, Any]:
    return audio_facts(*args)


def _reason_detail(reason: str, row: pd.Series, cfg: ValidateConfig) -> str:
    details = {
        "missing_audio": row["error"],
        "unreadable_audio": row["error"],
        "empty_audio": row["error"],
        "bad_id": f"id {row['id']!r} is empty or contains a path separator",
        "too_short": f"{row['duration']:.2f} s < min_duration {cfg.min_duration} s",
        "too_long": f"{row['duration']:.2f} s > max_duration {cfg.max_duration} s",
        "silent": f"peak {row['peak']:.5f} < min_peak {cfg.min_peak}",
        "clipped": f"{row['clip_share']:.2%} of samples at |x| >= {cfg.clip_level} (max {cfg.max_clip_share:.2%})",
        "excess_silence": f"leading {row['lead_silence']:.2f} s + trailing {row['trail_silence']:.2f} s "
        f"= {row['silence_share']:.0%} of the file (max {cfg.max_silence_share:.0%})",
        "empty_text": "transcript is empty or whitespace",
        "unsupported_chars": f"characters the {row['language']} frontend cannot represent: {row['unsupported']!r}"
        " (spell out numbers and symbols in normalized_text)",
        "duplicate_id": f"id already used on line {row['duplicate_of']}",
        "duplicate_text": f"same transcript as {row['duplicate_text_of']}",
        "rate_outlier": f"{row['chars_per_second']:.1f} characters/s is {row['rate_ratio']:.2f}x the speaker median "
        f"(limit {cfg.rate_outlier_factor}x); the transcript probably does not match the audio",
    }
    return str(details[reason])


def _speaking_rates(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Characters per second of speech, and its ratio to the median of the row's speaker."""
    letters = df["normalized"].map(lambda t: sum(ch.isalpha() for ch in t)).astype(float)
    speech = df["duration"] - df["lead_silence"] - df["trail_silence"]
    rate = letters / speech.where(speech > MIN_SPEECH_SECONDS)
    rate = rate.where((df["status"] == "ok") & (letters > 0))
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


def validate_corpus(corpus: Path, cfg: DataConfig, target_sample_rate: int, workers: int) -> ValidationResult:
    """Read the corpus, measure every audio file, validate every row, decide and count."""
    vcfg = cfg.validate
    t0 = time.perf_counter()
    df = read_metadata(corpus, cfg)
    jobs = [(p, vcfg) for p in df["audio"]]
    with Pool(worker_count(workers)) as pool:
        facts = list(tqdm(pool.imap(_facts_job, jobs, chunksize=8), total=len(jobs), desc="validate", unit="file"))
    df = pd.concat([df, pd.DataFrame(facts, index=df.index)], axis=1)
    df["normalized"] = df["normalized_text"].map(normalize_text)
    df["unsupported"] = [unsupported_chars(t, lang) for t, lang in zip(df["normalized"], df["language"])]
    df["duplicate_of"] = _first_seen(df["id"], df["line"])
    nonempty = df["normalized"].str.lower().where(df["normalized"] != "", other=None)
    df["duplicate_text_of"] = _first_seen(
        nonempty.fillna(pd.Series([f"\0{i}" for i in df.index], index=df.index)), df["id"]
    )
    df["chars_per_second"], df["rate_ratio"] = _speaking_rates(df)

    failures = failed_checks(df, vcfg)
    rejected_rows = []
    for idx, checks in sorted(failures.items()):
        row = df.loc[idx]
        reasons = [f"{row['status']}_audio" if c == "audio" else c for c in checks]
        rejected_rows.append(
            {
                "id": row["id"],
                "line": int(row["line"]),
                "audio": row["audio"],
                "reasons": ";".join(reasons),
                "details": " | ".join(_reason_detail(r, row, vcfg) for r in reasons),
            }
        )
    rejected = pd.DataFrame(rejected_rows, columns=["id", "line", "audio", "reasons", "details"])
    accepted = df.drop(index=list(failures)).copy()
    warnings = _warnings(accepted, target_sample_rate, vcfg)

    by_reason: dict[str, int] = {}
    for reasons in rejected["reasons"]:
        for r in reasons.split(";"):
            by_reason[r] = by_reason.get(r, 0) + 1
    rates = accepted["sample_rate"].astype(int).value_counts().sort_index()
    report = {
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
        "seconds": round(time.perf_counter() - t0, 2),
    }
    manifest_cols = [
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
    manifest = accepted[manifest_cols].reset_index(drop=True)
    manifest["channels"] = manifest["channels"].astype(int)
    manifest["sample_rate"] = manifest["sample_rate"].astype(int)
    return ValidationResult(manifest, rejected, warnings, report)


def _warnings(accepted: pd.DataFrame, target_sr: int, vcfg: ValidateConfig) -> pd.DataFrame:
    rows = []
    for _, r in accepted.iterrows():
        if r["channels"] > 1:
            rows.append(
                (r["id"], r["line"], "multichannel", f"{int(r['channels'])} channels; downmixed to mono in precompute")
            )
        if r["sample_rate"] != target_sr:
            rows.append(
                (
                    r["id"],
                    r["line"],
                    "resampled",
                    f"{int(r['sample_rate'])} Hz; resampled to {target_sr} Hz in precompute",
                )
            )
        if r["duplicate_text_of"] and not vcfg.reject_duplicate_text:
            rows.append((r["id"], r["line"], "duplicate_text", f"same transcript as {r['duplicate_text_of']}"))
        if r["clip_share"] > 0:
            rows.append(
                (r["id"], r["line"], "some_clipping", f"{r['clip_share']:.3%} of samples clipped (under the limit)")
            )
    return pd.DataFrame(rows, columns=["id", "line", "kind", "detail"])


def write_outputs(result: ValidationResult, manifest_path: Path, reports: Path) -> None:
    """Write the manifest and the reports, each atomically."""
    with atomic_path(manifest_path) as tmp:
        result.manifest.to_parquet(tmp, index=False)
    with atomic_path(reports / "rejected.csv") as tmp:
        result.rejected.to_csv(tmp, index=False)
    with atomic_path(reports / "warnings.csv") as tmp:
        result.warnings.to_csv(tmp, index=False)
    write_json(reports / "validation.json", result.report)


def _summary(result: ValidationResult, reports: Path) -> str:
    r = result.report
    lines = [
        f"validate: {r['rows']} rows, {r['accepted']} accepted ({r['accepted_hours'] * 60:.1f} min), "
        f"{r['rejected']} rejected, {r['warnings']} warnings"
    ]
    for reason, n in r["rejected_by_reason"].items():
        lines.append(f"  rejected {reason}: {n}")
    for kind, n in r["warnings_by_kind"].items():
        lines.append(f"  warning {kind}: {n}")
    if r["rejected"]:
        lines.append(f"  every rejected row and its reason: {reports / 'rejected.csv'}")
    if r["warnings"]:
        lines.append(f"  every warning: {reports / 'warnings.csv'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the validate stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara validate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--corpus", help="corpus folder (default: params data.corpus)")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="output manifest")
    ap.add_argument("--reports", default="reports", help="folder for the reports")
    args = ap.parse_args(argv)
    return run_stage("validate", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    cfg = data_config(params)
    fcfg = features_config(params)
    corpus = Path(args.corpus or cfg.corpus)
    result = validate_corpus(corpus, cfg, fcfg.sample_rate, fcfg.workers)
    reports = Path(args.reports)
    write_outputs(result, Path(args.manifest), reports)
    print(_summary(result, reports))
    if result.report["accepted"] == 0:
        print(f"validate: error: no usable rows in {corpus}; see {reports / 'rejected.csv'}", file=sys.stderr)
        return EXIT_VERDICT
    return 0


if __name__ == "__main__":
    sys.exit(main())
