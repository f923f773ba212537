"""A training step of the CPU demo's configuration, here and at an earlier revision, in one run.

    python -m benchmarks.step_vs_revision [--rev 6da27f5] [--steps 10] [--rounds 2] [--threads 2]
        [--set model.attention_dropout=0 ...] [--base-set KEY=VALUE ...]

The earlier revision is checked out with `git worktree` into a temporary folder. Each side
times `--steps` optimizer steps of its own Trainer (after one untimed step) in a child process
with `--threads` torch threads, on the same batches: this workspace's `data/features.zarr`, the
training split's first length-bucketed batches in training's own order. Each side builds its
model from its own params.yaml plus its own setup.sh's CPU_DEMO overrides (the demo's decoder,
batch, LR), then `--base-set` (the revision) or `--set` (this tree) on top. The two sides
alternate `--rounds` times so that a drift in the machine's speed favours neither; the figure
is the mean seconds per step of each side and their ratio. Results are written to
benchmarks/results/step_vs_revision.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.decoders import cpu_demo, parse_sets, with_overrides
from pipeline.common.atomic import write_json

REPO = Path(__file__).resolve().parents[1]

# Run inside each side's own checkout, with that side's own modules: the helpers it uses
# (params_for, build_trainer, preload, timed_steps, open_store) exist at every revision since
# 6da27f5, where benchmarks/train_throughput.py gathered them.
CHILD = """
import argparse, json, sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from benchmarks.train_throughput import add_store_arguments, build_trainer, open_store, preload, timed_steps
from pipeline.config import store_model_config
ap = argparse.ArgumentParser()
add_store_arguments(ap, steps=int(sys.argv[4]), steps_help="")
args = ap.parse_args(["--store", sys.argv[2], "--params", sys.argv[3], "--device", "cpu"])
params, store, attrs, device = open_store(ap, args)
t = params["train"]
batches = preload(store, 0, t["batch_size"], t["seed"], int(sys.argv[4]) + 1)
trainer = build_trainer(params, store_model_config(params, attrs), device)
trainer.train_step([batches[0]])
seconds = timed_steps(trainer, batches[1:], device) / (len(batches) - 1)
print(json.dumps({"step_seconds": seconds, "frames": sum(int(b.frame_mask.sum()) for b in batches[1:])}))
"""


def demo_params(checkout: Path, extra: list[str], out: Path) -> dict[str, str]:
    """Write that checkout's params.yaml with its CPU_DEMO overrides and `extra` (KEY=VALUE, as
    DVC's -S parses them) to `out`; returns the overrides applied."""
    overrides = {**cpu_demo(checkout), **parse_sets(extra)}
    params = with_overrides(yaml.safe_load((checkout / "params.yaml").read_text(encoding="utf-8")), overrides)
    out.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return overrides


def time_side(checkout: Path, params: Path, store: Path, steps: int, threads: int) -> dict:
    """One child process's seconds per step in `checkout`."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-c", CHILD, str(threads), str(store), str(params), str(steps)]
    done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"timing in {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="6da27f5", help="the earlier revision")
    ap.add_argument("--store", type=Path, default=REPO / "data" / "features.zarr")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE on this tree's side")
    ap.add_argument("--base-set", action="append", default=[], help="KEY=VALUE on the revision's side")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "step_vs_revision.json")
    args = ap.parse_args(argv)
    if not args.store.exists():
        ap.error(f"{args.store}: no features store; run `dvc repro precompute` first")
    with tempfile.TemporaryDirectory(prefix="hamgara-rev-") as tmp:
        base = Path(tmp) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.rev], cwd=REPO, check=True)
        try:
            sides = {"revision": (base, args.base_set), "this tree": (REPO, args.sets)}
            files, applied = {}, {}
            for name, (checkout, extra) in sides.items():
                files[name] = Path(tmp) / f"params-{name.replace(' ', '-')}.yaml"
                applied[name] = demo_params(checkout, extra, files[name])
            runs: dict[str, list[dict]] = {name: [] for name in sides}
            for r in range(args.rounds):
                for name, (checkout, _) in sides.items():
                    runs[name].append(time_side(checkout, files[name], args.store, args.steps, args.threads))
                    print(f"round {r + 1}: {name}: {runs[name][-1]['step_seconds'] * 1e3:.0f} ms per step", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, check=False)
    mean = {name: sum(x["step_seconds"] for x in v) / len(v) for name, v in runs.items()}
    result = {
        "revision": args.rev,
        "threads": args.threads,
        "steps": args.steps,
        "rounds": args.rounds,
        "frames_per_step": runs["this tree"][0]["frames"] / args.steps,
        "overrides": applied,
        "step_seconds": mean,
        "runs": runs,
        "speedup": mean["revision"] / mean["this tree"],
    }
    write_json(args.out, result)
    print(
        f"{args.rev}: {mean['revision'] * 1e3:.0f} ms per step; this tree: {mean['this tree'] * 1e3:.0f} ms: "
        f"{result['speedup']:.2f}x cheaper\n-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
