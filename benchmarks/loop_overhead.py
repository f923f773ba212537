"""What the training loop costs around the step on a CPU: dvclive's per-step sync and the
loader's worker processes.

    python -m benchmarks.loop_overhead [--store data/features.zarr] [--history 3600] [--probe 50]
        [--steps 35,140] [--workers 2,0]

1. dvclive: one Live is fed the loop's 25 train metrics per step for `--history` steps, each
   step closed as the loop closes it (`_end_live_step` of pipeline/training/loop.py). At the
   start, half-way and at the end, `--probe` steps are timed closed both ways, alternated:
   dvclive's full `next_step` (what the loop called every step before) and the loop's close
   between validations. dvclive's `next_step` re-reads every metric table for a DVC Studio
   update even when no Studio is configured, so its cost grows with the history.
2. Loader workers: the demo's training (setup.sh's CPU_DEMO, the real `fit`, validation only at
   the last step) for each count in `--steps` with each `train.num_workers` in `--workers`; the
   seconds per step between the shortest and the longest run (so start-up and the last
   validation cancel), and whether the runs' train/loss rows are identical (they must be: the
   workers change where a batch is read, not what it holds).

Prints the figures and writes JSON (default benchmarks/results/loop_overhead.json).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.decoders import cpu_demo, with_overrides
from pipeline.common.atomic import write_json
from pipeline.common.run_log import end_live_step as _end_live_step
from pipeline.config import load_params
from pipeline.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
TRAIN_METRICS = 25  # what the loop logs per step on a CPU with the demo's settings


def _log_step(live: Any, step: int) -> None:
    for k in range(TRAIN_METRICS):
        live.log_metric(f"train/m{k}", 0.001 * k + 1.0 / (step + 1))


def dvclive_close_costs(history: int, probe: int, folder: Path) -> list[dict[str, float]]:
    """Milliseconds per step of dvclive's full `next_step` and of the loop's close, at history
    lengths of about 0, history/2 and history (a probe's own steps join the history)."""
    from dvclive import Live

    live = Live(str(folder), dvcyaml=False, save_dvc_exp=False)
    marks = sorted({0, history // 2, history})
    rows = []
    for mark in marks:
        while live.step < mark:
            _log_step(live, live.step)
            _end_live_step(live, validated=False)
        at = live.step  # the history the probes start from (earlier probes count too)
        costs: dict[str, float] = {}
        for name, close in (
            ("next_step", live.next_step),
            ("loop", lambda: _end_live_step(live, validated=False)),
            ("next_step_again", live.next_step),
        ):
            started = time.perf_counter()
            for _ in range(probe):
                _log_step(live, live.step)
                close()
            costs[name] = (time.perf_counter() - started) / probe * 1000
        rows.append(
            {
                "history": at,
                "next_step_ms": (costs["next_step"] + costs["next_step_again"]) / 2,
                "loop_ms": costs["loop"],
            }
        )
        print(f"dvclive at {at:>5} steps: next_step {rows[-1]['next_step_ms']:.1f} ms, loop {costs['loop']:.1f} ms")
    live.end()
    return rows


def demo_training_seconds(params: dict, store: Path, steps: int, workers: int, folder: Path) -> tuple[float, list[str]]:
    """Wall seconds of the demo's training for `steps` steps with `workers` loader processes,
    and its train/loss rows."""
    p = with_overrides(
        params,
        {
            "train.max_steps": str(steps),
            "train.val_every": str(10**9),
            "train.checkpoint_every": str(10**9),
            "train.num_workers": str(workers),
        },
    )
    started = time.perf_counter()
    fit(store, p, folder / "models", folder / "live", progress=False)
    seconds = time.perf_counter() - started
    rows = (folder / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    return seconds, rows


def worker_costs(params: dict, store: Path, steps: list[int], workers: list[int], root: Path) -> dict[str, Any]:
    """Seconds per step (between the shortest and longest run) for each worker count; runs
    ordered short ones first, worker counts alternated, so a drift in speed favours none."""
    short, long = min(steps), max(steps)
    seconds: dict[tuple[int, int], float] = {}
    losses: dict[int, list[str]] = {}
    order = [(w, short) for w in workers] + [(w, long) for w in reversed(workers)]
    for w, n in order:
        seconds[w, n], rows = demo_training_seconds(params, store, n, w, root / f"w{w}-{n}")
        if n == long:
            losses[w] = rows
        print(f"{n} steps, {w} loader workers: {seconds[w, n]:.1f} s", flush=True)
    per_step = {w: (seconds[w, long] - seconds[w, short]) / (long - short) for w in workers}
    first = losses[workers[0]]
    return {
        "runs": [{"workers": w, "steps": n, "seconds": round(s, 2)} for (w, n), s in seconds.items()],
        "ms_per_step": {str(w): round(v * 1000, 1) for w, v in per_step.items()},
        "identical_loss_rows": all(losses[w] == first for w in workers),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--history", type=int, default=3600, help="dvclive history length (the demo's steps)")
    ap.add_argument("--probe", type=int, default=50, help="dvclive steps timed each way at each history length")
    ap.add_argument("--steps", default="35,140", help="training runs' lengths (the shortest is subtracted)")
    ap.add_argument("--workers", default="2,0", help="train.num_workers values compared")
    ap.add_argument("--skip-training", action="store_true", help="the dvclive part only (no features needed)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/loop_overhead.json"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hamgara-loop-") as tmp:
        result: dict[str, Any] = {
            "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "processor": platform.processor()},
            "threads": torch.get_num_threads(),
            "dvclive": dvclive_close_costs(args.history, args.probe, Path(tmp) / "live"),
        }
        if not args.skip_training:
            store = Path(args.store)
            if not store.exists():
                ap.error(f"{store}: no features store; run `dvc repro precompute` (or ./setup.sh repro) first")
            params = with_overrides(load_params(args.params), cpu_demo())
            steps = [int(s) for s in args.steps.split(",")]
            workers = [int(w) for w in args.workers.split(",")]
            result["loader_workers"] = worker_costs(params, store, steps, workers, Path(tmp))
            print(
                f"loader workers, ms per step: {result['loader_workers']['ms_per_step']}; "
                f"identical loss rows: {result['loader_workers']['identical_loss_rows']}"
            )
    write_json(Path(args.out), result)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
