"""`hamgara doctor`: is my data right, did my run go right? A review a person can act on.

Reads what the pipeline already wrote — validate's and precompute's reports, features.zarr,
the checkpoint and the dvclive history — and turns it into checks, each with a verdict
(ok / warning / problem), the evidence and the fix. Writes reports/doctor.md and
reports/doctor.json.

The data: rejections by reason, silence and clipping, sample-rate mix, minutes, sample
rates and recording level per speaker, alignment-score
outliers with the ids to listen to, every chunk of features.zarr decoding (a damaged one is
named with its array, chunk and file), symbol coverage, lengths against the model's limits, mel
statistics, phoneme and diphone coverage of the training transcripts (how many of the pairs of
sounds occur, how often, the rarest), normalisation in the checkpoint against the store; a
checkpoint that is missing or unreadable is a problem. With --text FILE (one sentence per line):
the diphones and phonemes of that text the training never had, each with an example line, and
the lines to record first to cover them. The model (on a batch of your training split): overfitting one
batch, gradient flow per module, each loss term's share of the gradient; the attention's
alignment error over training; free-running synthesis against teacher forcing at the last
validation (exposure bias) and how many utterances ended on time. The run: LR schedule as applied, skipped non-finite steps,
plateau and early-stop events, the loss slope, train/validation gap, throughput and GPU
utilisation. The vocoder: whether one was trained, for these mels, and how it compares with
Griffin-Lim in reports/eval.json. The checks live in pipeline/evaluation/ (diagnosis.py and the modules it calls).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from pipeline.common.atomic import write_json, write_text
from pipeline.common.cli_args import non_negative_float, non_negative_int, positive_float
from pipeline.common.stage import EXIT_VERDICT, run_stage
from pipeline.evaluation.coverage import read_script
from pipeline.evaluation.data_checks import TEXT_COVERAGE
from pipeline.evaluation.diagnosis import review
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING, render_markdown


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara doctor`."""
    ap = argparse.ArgumentParser(
        prog="hamgara doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--reports", default="reports", help="validate/precompute reports; doctor.md and doctor.json go here"
    )
    ap.add_argument("--features", default="data/features.zarr")
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--run", default="dvclive", help="the training run's dvclive folder")
    ap.add_argument(
        "--vocoder", default="models/vocoder.pt", help="the vocoder stage's generator (reviewed when present)"
    )
    ap.add_argument("--params", default="params.yaml", help="params file (the model checks build the model from it)")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="validate's manifest (the per-speaker checks)")
    ap.add_argument(
        "--min-symbol-count", type=non_negative_int, default=20, help="symbols rarer than this in training are flagged"
    )
    ap.add_argument(
        "--min-speaker-minutes",
        type=non_negative_float,
        default=10.0,
        help="speakers with less audio than this are flagged",
    )
    ap.add_argument(
        "--overfit-steps",
        type=non_negative_int,
        default=150,
        help="steps of the overfit-one-batch check; 0 skips the model checks",
    )
    ap.add_argument(
        "--overfit-lr", type=positive_float, default=1e-3, help="learning rate of the overfit-one-batch check"
    )
    ap.add_argument(
        "--text",
        help="a text file, one sentence per line (a recording script, or what the voice will read): "
        "its diphones and phonemes the training transcripts never had",
    )
    ap.add_argument(
        "--language",
        help="the --text file's language (an espeak-ng voice name: en-us, fa); default: the store's one language",
    )
    args = ap.parse_args(argv)
    if args.language and not args.text:
        ap.error("--language is the --text file's language: give --text too")
    return run_stage("doctor", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import load_params

    # Read before any check runs: a missing or empty text file stops doctor at once (exit 2), not
    # after the minutes the store and model checks can take.
    script = read_script(Path(args.text)) if args.text else None
    params = load_params(args.params) if args.overfit_steps > 0 else None
    checks = review(
        Path(args.reports),
        Path(args.features),
        Path(args.checkpoint),
        Path(args.run),
        params,
        args.min_symbol_count,
        overfit_steps=args.overfit_steps,
        overfit_lr=args.overfit_lr,
        manifest=Path(args.manifest),
        min_speaker_minutes=args.min_speaker_minutes,
        vocoder=Path(args.vocoder) if args.vocoder else Path(args.checkpoint).parent / "vocoder.pt",
        script=script,
        script_language=args.language,
    )
    write_json(Path(args.reports) / "doctor.json", {"checks": [asdict(c) for c in checks]})
    write_text(Path(args.reports) / "doctor.md", render_markdown(checks))
    problems = [c for c in checks if c.verdict == PROBLEM]
    for c in checks:
        # The text's coverage is said even when ok: it is the answer to what --text asked.
        if c.verdict != OK or c.name == TEXT_COVERAGE:
            print(f"{c.verdict}: {c.section}/{c.name}: {c.evidence}" + (f" -> {c.fix}" if c.fix else ""))
    print(
        f"doctor: {len(problems)} problem(s), {sum(c.verdict == WARNING for c in checks)} warning(s) -> "
        f"{args.reports}/doctor.md, {args.reports}/doctor.json"
    )
    return EXIT_VERDICT if problems else 0


if __name__ == "__main__":
    sys.exit(main())
