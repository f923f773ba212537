"""Aligner accuracy and time against training steps, on the demo corpus (or any corpus with
reference timings in <corpus>/alignments/).

    python -m benchmarks.aligner_steps [--store data/features.zarr] [--checkpoints 100,200,...]

Trains one aligner from scratch with the `align` params (steps = the last checkpoint) on the
mels and tokens of a finished features store, and at each checkpoint extracts durations for
every utterance and scores the word boundaries against festival's timings. Prints a table and
writes JSON (default benchmarks/results/aligner_steps.json): the default `align.steps` is
chosen from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.common.atomic import write_json
from pipeline.config import align_config, load_params
from pipeline.features.aligner_training import Corpus, extract, train_aligner
from pipeline.features.boundaries import corpus_accuracy
from pipeline.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--checkpoints", default="100,200,300,500,800,1200,2000")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/aligner_steps.json"))
    args = ap.parse_args(argv)
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    cfg = dataclasses.replace(align_config(load_params(args.params)), steps=checkpoints[-1])
    fs = FeatureStore(args.store)
    table = fs.attrs["symbols"]
    features = fs.attrs["features"]
    spf = features["hop_length"] / features["sample_rate"]
    separators = frozenset(table.index(s) for s in (" ",) if s in table)
    symbols = [[table[t] for t in fs.tokens(i)] for i in range(len(fs))]
    languages = [fs.attrs["languages"][k] for k in fs.array("language")]
    corpus = Path(load_params(args.params)["data"]["corpus"])
    if not corpus.is_absolute():
        corpus = REPO / corpus
    frames = fs.frames()
    mean, std = np.asarray(fs.attrs["mel_mean"]), np.asarray(fs.attrs["mel_std"])
    corpus_in = Corpus(lambda i: (fs.mel(i), fs.tokens(i)), frames, len(table), separators, mean, std)
    rows: list[dict] = []
    train_seconds = 0.0
    last = time.perf_counter()

    def evaluate(step: int, model) -> None:
        nonlocal train_seconds, last
        if step not in checkpoints:
            return
        train_seconds += time.perf_counter() - last
        ex, _ = extract(model, corpus_in, cfg, progress=False)
        acc = corpus_accuracy(
            fs.ids, [corpus] * len(fs), fs.attrs["texts"], languages, symbols, ex.durations, fs.array("trim_start"), spf
        )
        rows.append(
            {"steps": step, "train_seconds": round(train_seconds, 1), "extract_seconds": round(ex.seconds, 1), **acc}
        )
        r = rows[-1]
        print(
            f"{step:>6} {r['train_seconds']:>9} {r['extract_seconds']:>8} {r['word_boundary_median_ms']:>10} "
            f"{r['word_boundary_mean_ms']:>9} {r['word_boundary_within_20ms']:>8.1%} {r['word_boundary_within_50ms']:>8.1%}",
            flush=True,
        )
        last = time.perf_counter()

    print(f"{'steps':>6} {'train s':>9} {'extract':>8} {'median ms':>10} {'mean ms':>9} {'<=20ms':>8} {'<=50ms':>8}")
    train_aligner(corpus_in, cfg, progress=False, on_step=evaluate)
    write_json(args.out, {"store": args.store, "align": dataclasses.asdict(cfg), "rows": rows})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
