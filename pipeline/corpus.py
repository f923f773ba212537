"""The `corpus` stage: synthesize the embedded demo corpus with festival.

Writes an LJSpeech-layout folder (metadata.csv, wavs/) plus festival's true phone and word
timings (alignments/) and a summary (corpus.json). The whole folder is built next to its
target and renamed into place at the end, so a killed run never leaves half a corpus.

    python -m pipeline.corpus [--params params.yaml] [--out DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.cli_args import non_negative_int
from pipeline.common.runtime import worker_count
from pipeline.common.stage import run_stage
from pipeline.config import data_config, load_params
from pipeline.demo.build import build_demo_corpus
from pipeline.demo.festival import INSTALL_HINT

DEMO_DIR = "data/corpus"  # the corpus stage's out in dvc.yaml


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.corpus",
        description=(
            "Synthesize the demo corpus with festival (params: data.demo) into an LJSpeech-style "
            "folder: metadata.csv (id|text|normalized_text), wavs/, alignments/ (festival's "
            "phone and word timings) and corpus.json (summary). Needs: " + INSTALL_HINT
        ),
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEMO_DIR),
        help="corpus folder to (re)create (default: %(default)s, the stage's DVC output; never data.corpus, "
        "which may be your own corpus)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="parallel festival processes; 0 = all cores (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of the corpus stage."""
    args = _parse_args(argv)
    return run_stage("corpus", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    data = data_config(load_params(args.params))
    out = args.out
    started = time.perf_counter()
    summary = build_demo_corpus(data.demo, out, worker_count(args.workers))
    print(
        f"corpus: {summary['utterances']} utterances, {summary['total_minutes']:.1f} min of speech "
        f"({summary['seconds_min']:.1f}-{summary['seconds_max']:.1f} s each), "
        f"{summary['words_min']}-{summary['words_max']} words (mean {summary['words_mean']:.1f}), "
        f"voice {summary['voice']} at {summary['sample_rate']} Hz, seed {summary['seed']}; "
        f"written to {out} in {time.perf_counter() - started:.1f} s"
    )
    for name, s in summary.get("speakers", {}).items():
        print(
            f"corpus:   speaker {name}: {s['voice']} at {s['sample_rate']} Hz, {s['utterances']} utterances, {s['minutes']:.1f} min"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
