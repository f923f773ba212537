"""Does `train.speaker_balance` help the small speakers of the multi-speaker demo?

    python -m benchmarks.speaker_balance --data /path/to/data [--balances 0,0.5] [--seeds 1234,7]
        [--jobs 2] [--threads 1]
    python -m benchmarks.speaker_balance --table

`--data` is a `data/` folder that `./setup.sh repro-multi` made (its features.zarr and
manifest.parquet; the recordings it names must still be there, evaluate reads them). Each run is
that command's train and evaluate stages on those features: setup.sh's CPU_DEMO and MULTI_DEMO
overrides, then `train.speaker_balance` and `train.seed`, in its own folder under --work (a copy of
the checkout's tracked files, the data hard-linked), `--jobs` side by side with `--threads` torch
threads each. Results (benchmarks/results/speaker_balance.json, written after every run; a rerun
skips the runs already there): per speaker the WER gap over vocoded truth, the recognizer's WER on
the recordings, the speaker-similarity margin ratio (synthesized / real) and identification, and
the same overall, plus wall time.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.decoders import cpu_demo, prepare, run_side_by_side, setup_array, train_and_evaluate

REPO = Path(__file__).resolve().parents[1]


def overrides(balance: float, seed: int) -> dict[str, str]:
    """The multi-speaker demo's overrides with this run's balance and seed."""
    return {
        **cpu_demo(),
        **setup_array("MULTI_DEMO"),
        "train.speaker_balance": str(balance),
        "train.seed": str(seed),
    }


def figures(folder: Path, balance: float, seed: int, seconds: float | None) -> dict[str, Any]:
    """One finished run's per-speaker and overall figures (its reports/eval.json)."""
    ev = json.loads((folder / "reports" / "eval.json").read_text())
    sim = ev.get("speaker_similarity", {})
    speakers = {}
    for name, s in ev["per_speaker"].items():
        block = sim.get("per_speaker", {}).get(name, {})
        speakers[name] = {
            "utterances": s["utterances"],
            "wer_gap": s["wer"]["gap"],
            "wer_truth": s["wer"]["truth"],
            "margin_ratio": block.get("margin_ratio"),
            "identification": block.get("synthesized", {}).get("identification"),
        }
    return {
        "balance": balance,
        "seed": seed,
        "wer_gap": ev["wer"]["gap"],
        "margin_ratio": sim.get("margin_ratio"),
        "identification": sim.get("synthesized", {}).get("identification"),
        "stop": ev.get("stop"),
        "speakers": speakers,
        "wall_seconds": seconds,
    }


def run_one(balance: float, seed: int, data: Path, work: Path, threads: int) -> dict[str, Any]:
    """Train and evaluate one run in its own folder; its figures."""
    folder = work / f"balance{balance:g}-s{seed}"
    prepare(folder, overrides(balance, seed), data=data)
    return figures(folder, balance, seed, train_and_evaluate(folder, threads, f"balance {balance:g} seed {seed}"))


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per run and speaker (WER gap, margin ratio, identification)."""
    lines = [
        "| balance | seed | speaker | WER gap | WER truth | margin ratio | identified |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    for r in sorted(results, key=lambda r: (r["balance"], r["seed"])):
        for name, s in r["speakers"].items():
            lines.append(
                f"| {r['balance']:g} | {r['seed']} | {name} | {fmt(s['wer_gap'])} | {fmt(s['wer_truth'])} | "
                f"{fmt(s['margin_ratio'])} | {fmt(s['identification'])} |"
            )
        lines.append(
            f"| {r['balance']:g} | {r['seed']} | **all** | {fmt(r['wer_gap'])} | | {fmt(r['margin_ratio'])} | "
            f"{fmt(r['identification'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="a data/ folder made by ./setup.sh repro-multi")
    ap.add_argument("--balances", default="0,0.5")
    ap.add_argument("--seeds", default="1234,7")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hamgara-speaker-balance"), help="run folders")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "speaker_balance.json")
    ap.add_argument("--table", action="store_true", help="print the table of finished runs and exit")
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = json.loads(args.results.read_text()) if args.results.is_file() else []
    if args.table:
        print(table(results))
        return 0
    if args.data is None or not (args.data / "features.zarr").is_dir():
        raise SystemExit("--data: a data/ folder with the multi-speaker features (run ./setup.sh repro-multi first)")
    done = {(r["balance"], r["seed"]) for r in results}
    todo = [(float(b), int(s)) for b in args.balances.split(",") for s in args.seeds.split(",")]
    todo = [(b, s) for b, s in todo if (b, s) not in done]
    calls = [functools.partial(run_one, b, s, args.data.resolve(), args.work, args.threads) for b, s in todo]
    run_side_by_side(args.jobs, calls, results, args.results, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
