"""The `validate` stage: check every corpus row before anything is trusted.

Reads the corpus named by params `data.corpus`; writes data/manifest.parquet (accepted rows
with their audio facts), reports/validation.json (counts by reason, DVC metrics),
reports/rejected.csv (every rejected row and why) and reports/warnings.csv (rows accepted
with a fix-up, e.g. stereo or a foreign sample rate that precompute resamples).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.stage import EXIT_VERDICT, run_stage
from pipeline.config import data_config, features_config, load_params
from pipeline.data.validation import ValidationResult, validate_corpus, write_outputs


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
    result = validate_corpus(corpus, cfg, fcfg.sample_rate, fcfg.workers, frontend=fcfg.frontend)
    reports = Path(args.reports)
    write_outputs(result, Path(args.manifest), reports)
    print(_summary(result, reports))
    if result.report["accepted"] == 0:
        print(f"validate: error: no usable rows in {corpus}; see {reports / 'rejected.csv'}", file=sys.stderr)
        return EXIT_VERDICT
    return 0


if __name__ == "__main__":
    sys.exit(main())
