"""Which decoder speaks within the CPU demo's budget, and which remedies against exposure bias matter.

    python -m benchmarks.decoders [--runs ar-remedies,parallel] [--seeds 1234,7] [--jobs 2]
    python -m benchmarks.decoders --table      # the table of the finished runs only
    python -m benchmarks.decoders --step-cost  # what each remedy adds to a training step

Each run is the README's first command minus the corpus and precompute stages: the train and
evaluate stages on the workspace's demo features (`data/`, made by `./setup.sh repro` or
`dvc repro precompute`), with setup.sh's CPU_DEMO overrides plus the run's own and a seed. A
run works in its own folder under --work (a copy of the checkout's tracked files, the data
hard-linked), so `--jobs` runs go side by side, each with `--threads` torch threads (two runs
of one thread each use 2 cores better than one run of two). Results are written after every
run (default benchmarks/results/decoders.json); a rerun skips the runs already there.

A run's figures: the evaluate stage's report (WER of free-running synthesis, of the vocoded
recording and of the recording; the held-back sentences; MCD; length ratio error; stop
outcomes; teacher-forced val_mel_loss) and the last validation's free-running figures
(`free/*`), plus wall time. The held-back sentences have no recording, so their gap is taken
against the validation set's vocoded truth.

`--step-cost`: seconds per training step of the demo's autoregressive configuration with each
run's remedies, on the same preloaded demo batches in one process, the configurations
alternated twice so that a drift in the machine's speed favours none; scheduled sampling is
timed at its full probability (after its ramp). Written next to --results with `_step_cost` added
to its name (by default benchmarks/results/decoders_step_cost.json), so a measurement of other runs
can be kept beside the earlier one with `--results benchmarks/results/OTHER.json`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from pipeline.common.atomic import write_json

REPO = Path(__file__).resolve().parents[1]

# Every autoregressive run sets each remedy's key, so no run depends on params.yaml's defaults.
REMEDIES = {
    "model.aligned_conditioning": "true",
    "train.scheduled_sampling": "0.5",
    "train.scheduled_sampling_steps": "1000",
    "train.input_noise": "0",
}
NONE = {"model.aligned_conditioning": "false", "train.scheduled_sampling": "0", "train.input_noise": "0"}
# The budget of the parallel demo these runs were measured against (setup.sh's CPU_DEMO before
# the demo moved to the autoregressive decoder): 2,000 steps, one 1,800-step cycle, r = 2, lr 1e-3
# (CPU_DEMO's until the ar-demo-lr-find runs below moved it to 1.7e-3) and attention dropout 0.1
# (until the CPU demo turned it off with 3,600 steps).
STEPS_2000 = {
    "train.max_steps": "2000",
    "train.restart_period": "1800",
    "model.reduction": "2",
    "train.lr": "1e-3",
    "model.attention_dropout": "0.1",
}
AR = {"model.decoder": "autoregressive", **STEPS_2000}

# name -> overrides on top of CPU_DEMO; the ablations switch one remedy off at a time.
RUNS: dict[str, dict[str, str]] = {
    "parallel": {**STEPS_2000, "model.decoder": "parallel"},
    "ar-plain": {**AR, **NONE},
    "ar-remedies": {**AR, **REMEDIES},
    "ar-no-aligned": {**AR, **REMEDIES, "model.aligned_conditioning": "false"},
    "ar-no-sampling": {**AR, **REMEDIES, "train.scheduled_sampling": "0"},
    "ar-remedies-noise": {**AR, **REMEDIES, "train.input_noise": "0.1"},
    "ar-sampling-full": {**AR, **REMEDIES, "train.scheduled_sampling": "1.0"},
    "ar-r3": {**AR, **REMEDIES, "model.reduction": "3"},
    "ar-r3-sampling-full": {**AR, **REMEDIES, "model.reduction": "3", "train.scheduled_sampling": "1.0"},
    # The same in the parallel demo's wall-clock budget: its step costs 1/1.46 of the parallel
    # decoder's (--step-cost), so 2,800 steps instead of 2,000, the cosine cycle and the sampling
    # ramp stretched in proportion.
    "ar-r3-sampling-full-2800": {
        **AR,
        **REMEDIES,
        "model.reduction": "3",
        "train.scheduled_sampling": "1.0",
        "train.scheduled_sampling_steps": "1400",
        "train.max_steps": "2800",
        "train.restart_period": "2600",
    },
}
# The demo's configuration at 2,800 steps (setup.sh's CPU_DEMO until issue 16's cheaper step) with
# one remedy off at a time: the ablation of what the demo trained, at its budget (r = 3).
DEMO_AR = RUNS["ar-r3-sampling-full-2800"]
RUNS["ar-demo-no-aligned"] = {**DEMO_AR, "model.aligned_conditioning": "false"}
RUNS["ar-demo-no-sampling"] = {**DEMO_AR, "train.scheduled_sampling": "0"}
RUNS["ar-demo-r2"] = {**DEMO_AR, "model.reduction": "2"}
# Issue 16's levers at the demo's configuration, one at a time: attention dropout off (the fused
# CPU attention kernel runs; a cheaper step if it costs no quality) and the learning rate
# `hamgara lr-find` suggested for it (1.6e-3 / 1.8e-3 on seeds 1234 / 7; their mean).
RUNS["ar-demo-no-attention-dropout"] = {**DEMO_AR, "model.attention_dropout": "0"}
RUNS["ar-demo-lr-find"] = {**DEMO_AR, "train.lr": "1.7e-3"}
# Issue 16's linear reach: the parallel decoder with each frame attending only to frames at most
# 64 away (flat cost per frame to 2,048 frames, benchmarks/scaling.py), against "parallel".
RUNS["parallel-window64"] = {**RUNS["parallel"], "model.frame_attention_window": "64"}
# The first command at 4,400 steps (setup.sh's CPU_DEMO since the loop's dvclive sync and the
# loader workers got cheaper: docs/measurements.md, "The loop around the step"), pinned like the rest: its
# spread over seeds.
RUNS["ar-demo-4400"] = {
    **DEMO_AR,
    "model.attention_dropout": "0",
    "train.lr": "1.7e-3",
    "train.max_steps": "4400",
    "train.restart_period": "4200",
    "train.scheduled_sampling_steps": "2200",
    "train.num_workers": "0",
}


def setup_array(name: str, checkout: Path = REPO) -> dict[str, str]:
    """A KEY=VALUE array of that checkout's setup.sh, read by bash itself (items may carry quotes)."""
    # From the line that opens the array to the one that closes it (an array may span lines).
    lines = f"awk '/^{name}=\\(/{{f=1}} f{{print}} f && /\\)[[:space:]]*$/{{exit}}' setup.sh"
    script = f'source <({lines}); printf "%s\\n" "${{{name}[@]}}"'
    out = subprocess.run(["bash", "-c", script], cwd=checkout, capture_output=True, text=True, check=True).stdout
    if not out.strip():
        raise SystemExit(f"{checkout / 'setup.sh'} has no {name}=(...) array")
    return dict(item.split("=", 1) for item in out.splitlines())


def cpu_demo(checkout: Path = REPO) -> dict[str, str]:
    """That checkout's setup.sh CPU_DEMO array as key -> value (the one place the demo budget
    is written)."""
    return setup_array("CPU_DEMO", checkout)


def set_param(params: dict[str, Any], key: str, value: str) -> None:
    """params[key] = value as DVC's -S would write it (YAML 1.2: 1e-3 is a number)."""
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    node[last] = parsed


def with_overrides(params: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """A copy of `params` with each KEY=VALUE override applied as DVC's -S would (set_param)."""
    params = copy.deepcopy(params)
    for key, value in overrides.items():
        set_param(params, key, value)
    return params


def parse_sets(items: list[str]) -> dict[str, str]:
    """Command-line KEY=VALUE items as a dict (a value may itself contain '='); an item without
    '=' or with an empty key is a usage error that names it."""
    sets = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. model.attention_dropout=0")
        sets[key] = value
    return sets


def prepare(folder: Path, overrides: dict[str, str], data: Path | None = REPO / "data") -> None:
    """A run folder: the checkout's tracked and unignored files, `data` (the workspace's demo
    data by default; None: none) hard-linked as its data/, params with the overrides."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if name.startswith("data/") or not (REPO / name).is_file():
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, folder / name)
    if data is not None:
        if not (data / "features.zarr").is_dir():
            raise SystemExit(f"{data / 'features.zarr'}: missing; run ./setup.sh repro (or dvc repro precompute)")
        subprocess.run(["cp", "-al", str(data), str(folder / "data")], check=True)
    params = with_overrides(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")), overrides)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def train_and_evaluate(folder: Path, threads: int, label: str) -> float:
    """The train and evaluate stages in a prepared run folder with `threads` torch threads,
    logged to its run.log; the seconds they took."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    with (folder / "run.log").open("w") as log:
        for stage in ("train", "evaluate"):
            proc = subprocess.run(
                [sys.executable, "-m", f"pipeline.{stage}"], cwd=folder, env=env, stdout=log, stderr=log
            )
            if proc.returncode:
                raise RuntimeError(f"{label}: {stage} exited {proc.returncode}; see {folder / 'run.log'}")
    return time.perf_counter() - started


def run_side_by_side(
    jobs: int,
    calls: list[Callable[[], dict[str, Any]]],
    results: list[dict[str, Any]],
    path: Path,
    show: Callable[[list[dict[str, Any]]], str],
) -> None:
    """Run `calls` `jobs` at a time; each result is appended and written to `path` (in call
    order) as it comes, and the table printed."""
    with ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(call) for call in calls]:
            results.append(future.result())
            write_json(path, results)
            print(show(results), flush=True)


def run_one(name: str, seed: int, work: Path, threads: int) -> dict[str, Any]:
    """Train and evaluate one run in its own folder; its figures."""
    folder = work / f"{name}-s{seed}"
    prepare(folder, {**cpu_demo(), **RUNS[name], "train.seed": str(seed)})
    seconds = train_and_evaluate(folder, threads, f"{name} seed {seed}")
    return figures(folder, name, seed, seconds)


def figures(folder: Path, name: str, seed: int, seconds: float | None) -> dict[str, Any]:
    """One finished run folder's figures (its reports/eval.json and last free-running validation)."""
    ev = json.loads((folder / "reports" / "eval.json").read_text())
    live = json.loads((folder / "dvclive" / "metrics.json").read_text())
    wer = ev["wer"]
    row = {
        "run": name,
        "seed": seed,
        "overrides": RUNS[name],
        "val_mel_loss": ev["val_mel_loss"],
        "wer": wer,
        "wer_gap": wer["gap"],
        "held_back_gap": wer["held_back"] - wer["vocoded_truth"],
        "mcd": ev["mcd"],
        "length_ratio_error": ev["length_ratio_error"],
        "stop": ev.get("stop"),
        "free": live.get("free"),
        "wall_seconds": seconds,
    }
    return row


def step_cost_path(results: Path) -> Path:
    """Where --step-cost writes: beside the run results, named after them."""
    return results.with_name(f"{results.stem}_step_cost.json")


def step_cost(runs: list[str], steps: int) -> dict[str, Any]:
    """Mean seconds per training step of each run's configuration and the ratio to the first."""
    import torch

    from benchmarks.train_throughput import build_trainer, preload, timed_steps
    from pipeline.config import load_params, store_model_config
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore

    store = REPO / "data" / "features.zarr"
    attrs = FeatureStore(store).attrs
    base = load_params(REPO / "params.yaml")
    device = torch.device("cpu")
    batches = preload(store, TRAIN, int(cpu_demo()["train.batch_size"]), 1234, steps + 1)
    configs = {}
    for name in runs:
        configs[name] = with_overrides(base, {**cpu_demo(), **RUNS[name], "train.scheduled_sampling_steps": "0"})
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(2):
        for name, p in configs.items():
            trainer = build_trainer(p, store_model_config(p, attrs), device)
            trainer.train_step([batches[0]])
            seconds[name].append(timed_steps(trainer, batches[1:], device) / steps)
    mean = {name: sum(v) / len(v) for name, v in seconds.items()}
    return {
        "steps": steps,
        "threads": torch.get_num_threads(),
        "step_seconds": mean,
        "ratio_to_first": {name: mean[name] / mean[runs[0]] for name in runs},
    }


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per run and seed."""
    lines = [
        "| run | seed | WER gap | held-back gap | MCD model / ceiling | length err | stop on time / early / late / never "
        "| free-running gap (last validation) | val_mel_loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["run"], r["seed"])):
        stop = " / ".join(str(r["stop"][k]) for k in ("on_time", "early", "late", "never")) if r["stop"] else "–"
        free = f"{r['free']['exposure_gap']:+.3f}" if r.get("free") else "–"
        lines.append(
            f"| {r['run']} | {r['seed']} | {r['wer_gap']:.3f} | {r['held_back_gap']:.3f} | "
            f"{r['mcd']['model']:.2f} / {r['mcd']['vocoder_ceiling']:.2f} | {r['length_ratio_error']:.3f} | {stop} | "
            f"{free} | {r['val_mel_loss']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="ar-remedies,parallel", help=f"comma-separated, from {', '.join(RUNS)}")
    ap.add_argument("--seeds", default="1234,7")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hamgara-decoders"), help="run folders")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "decoders.json")
    ap.add_argument("--collect", type=Path, nargs="*", default=[], help="add finished run folders NAME-sSEED")
    ap.add_argument("--table", action="store_true", help="print the table of finished runs and exit")
    ap.add_argument("--step-cost", action="store_true", help="time a training step of each of --runs and exit")
    ap.add_argument("--steps", type=int, default=20, help="--step-cost: timed steps per configuration")
    args = ap.parse_args(argv)
    if args.step_cost:
        cost = step_cost(args.runs.split(","), args.steps)
        write_json(step_cost_path(args.results), cost)
        print(json.dumps(cost, indent=1))
        return 0
    results: list[dict[str, Any]] = json.loads(args.results.read_text()) if args.results.is_file() else []
    for folder in args.collect:
        name, seed = folder.name.rsplit("-s", 1)
        results.append(figures(folder, name, int(seed), None))
        write_json(args.results, results)
    if args.table or args.collect:
        print(table(results))
        return 0
    done = {(r["run"], r["seed"]) for r in results}
    todo = [(n, int(s)) for n in args.runs.split(",") for s in args.seeds.split(",") if (n, int(s)) not in done]
    unknown = sorted({n for n, _ in todo} - set(RUNS))
    if unknown:
        raise SystemExit(f"unknown run(s): {', '.join(unknown)} (known: {', '.join(RUNS)})")
    calls = [functools.partial(run_one, n, s, args.work, args.threads) for n, s in todo]
    run_side_by_side(args.jobs, calls, results, args.results, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
