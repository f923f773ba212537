"""`hamgara doctor`'s review: every check, in the order a person reads them.

The data (pipeline/evaluation/data_checks.py, speaker_checks.py), the model (model_diagnosis.py, when params are
given) and the run (run_checks.py, with the configured train.lr against `hamgara lr-find`'s
reports/lr_find.json), then the trained vocoder (vocoder_checks.py); each a `Check` with a verdict, the evidence and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import train_config
from pipeline.evaluation.coverage import Script
from pipeline.evaluation.data_checks import (
    TEXT_COVERAGE,
    check_alignment,
    check_checkpoint,
    check_diphone_coverage,
    check_scored_sets,
    check_store,
    check_store_integrity,
    check_text_coverage,
    check_validation,
)
from pipeline.evaluation.model_diagnosis import check_model
from pipeline.evaluation.run_checks import (
    check_attention,
    check_free_running,
    check_lr_find,
    check_run,
    check_unseen_words,
)
from pipeline.evaluation.speaker_checks import check_speakers
from pipeline.evaluation.verdicts import PROBLEM, WARNING, Check
from pipeline.evaluation.vocoder_checks import check_vocoder


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON report, or None when it has not been written."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def review(
    reports: Path,
    store_path: Path,
    checkpoint: Path,
    live_dir: Path,
    params: dict[str, Any] | None = None,
    min_symbol_count: int = 20,
    max_frames: int = 8192,
    overfit_steps: int = 150,
    overfit_lr: float = 1e-3,
    manifest: Path | None = None,
    min_speaker_minutes: float = 10.0,
    vocoder: Path | None = None,
    script: Script | None = None,
    script_language: str | None = None,
) -> list[Check]:
    """Every check: the data, the model (when params are given), then the run. On a store with
    damaged chunks the checks that read its arrays are not run: they would stop on the first
    damaged chunk, and the integrity check has named them all. `script` (doctor --text) adds the
    text's coverage against the training transcripts, in `script_language` (default: the store's)."""
    integrity = check_store_integrity(store_path)
    intact = all(c.verdict != PROBLEM for c in integrity)
    checks = (
        check_validation(read_json(reports / "validation.json"))
        + check_speakers(
            pd.read_parquet(manifest) if manifest is not None and manifest.is_file() else None, min_speaker_minutes
        )
        + check_alignment(read_json(reports / "precompute.json"))
        + integrity
        + (check_store(store_path, min_symbol_count, max_frames) if intact else [])
        + (check_scored_sets(store_path) if intact else [])
        + (check_diphone_coverage(store_path) if intact else [])
    )
    if script is not None and intact:
        checks += check_text_coverage(store_path, script, script_language)
    elif script is not None:
        checks.append(
            Check("data", TEXT_COVERAGE, WARNING, f"not compared: {store_path} is damaged", integrity[0].fix + " first")
        )
    checks += check_checkpoint(checkpoint, store_path)
    if params is not None and intact:
        checks += check_model(params, store_path, overfit_steps, overfit_lr, checkpoint)
    elif params is not None:
        checks.append(
            Check("model", "model checks", WARNING, f"not run: {store_path} is damaged", integrity[0].fix + " first")
        )
    checks += check_attention(live_dir) + check_free_running(live_dir) + check_unseen_words(live_dir)
    checks += check_run(live_dir)
    # The params' train.lr when given (what the next run will use), else the report's own.
    configured_lr = train_config(params).lr if params is not None else None
    checks += check_lr_find(read_json(reports / "lr_find.json"), configured_lr)
    if vocoder is not None:
        checks += check_vocoder(vocoder, store_path, read_json(reports / "eval.json"))
    return checks
