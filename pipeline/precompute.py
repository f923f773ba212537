"""The `precompute` stage: manifest -> data/features.zarr (log-mels, token ids, durations, split, stats).

Text: normalized text -> phonemes (espeak-ng) or characters -> ids with a stored symbol
table. Audio: mono, resampled to features.sample_rate, trimmed, peak-normalized, log-mel.
Batches are processed in parallel and appended to a resumable partial store; a killed run
picks up at its last finished batch. Memory holds one batch, not the corpus. Then the
aligner (model/aligner.py) is trained on the corpus, or loaded from its cache, and gives
every token a duration and every utterance an alignment score; outliers are flagged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.atomic import write_json
from pipeline.common.lock import folder_lock
from pipeline.common.runtime import limit_heap_fragmentation
from pipeline.common.stage import run_stage
from pipeline.config import align_config, features_config, load_params
from pipeline.features.build import precompute
from pipeline.features.review import write_flagged


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the precompute stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara precompute", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate")
    ap.add_argument("--out", default="data/features.zarr", help="features store to write")
    ap.add_argument("--report", default="reports/precompute.json", help="metrics file to write")
    ap.add_argument("--figures", default="reports/figures/alignment", help="folder for alignment figures")
    ap.add_argument("--flagged", default="reports/align_flagged.csv", help="list of utterances the aligner flagged")
    args = ap.parse_args(argv)
    return run_stage("precompute", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    limit_heap_fragmentation()
    params = load_params(args.params)
    # The store and its partial sibling: two runs appending to one partial store would mix
    # their batches.
    with folder_lock(Path(args.out), "precompute"):
        report = precompute(
            Path(args.manifest), Path(args.out), features_config(params), align_config(params), Path(args.figures)
        )
        write_json(args.report, report)
        write_flagged(Path(args.out), Path(args.flagged))
    a = report["align"]
    print(
        f"aligner: {'trained' if a['trained'] else 'cached'}, {a['flagged']} utterance(s) flagged "
        f"(score > {a['score_threshold']}; list: {args.flagged})"
        + (
            f", word boundaries vs reference: median {a['word_boundary_median_ms']} ms, "
            f"{a['word_boundary_within_50ms']:.1%} within 50 ms"
            if "word_boundary_median_ms" in a
            else ""
        )
    )
    print(
        f"precompute: {report['utterances']} utterances ({report['train']} train, {report['val']} val), "
        f"{report['hours'] * 60:.1f} min of audio, {report['symbols']} symbols, {report['seconds']} s "
        f"({report['audio_seconds_per_second']} s of audio per s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
