"""Convergence study: the documented training recipe against the recipe it replaced, as DVC
experiments on the demo corpus (or whatever corpus the workspace's params.yaml points at).

    python -m benchmarks.convergence [--steps 300] [--val-every 25] [--runs all] [--seeds 1234]
    python -m benchmarks.convergence --table          # print the table of finished runs only

Run it from the root of a Hamgara checkout whose params.yaml is committed (it is reset to HEAD
before each run, so the runs differ only in the overrides listed here). Each run is
`dvc exp run -n conv-<run>-s<seed> -S ...`: the train and evaluate stages, so afterwards
`dvc exp show` and `dvc metrics diff conv-before-ar-s1234 conv-documented-ar-s1234` reproduce
every figure of the table. Results are written after every run (default
benchmarks/results/convergence.json); a rerun skips the runs already there, so an interruption
loses at most the run in progress.

Every run shares the CPU budget below (the tiny model, batch 16, `--steps` optimizer steps, a
validation every `--val-every` steps, warm-up a tenth of the budget). The documented recipe keeps
params.yaml's values; the "before" recipe changes exactly the keys in BEFORE. A run's figures:
val_mel_loss at fixed steps, the steps to reach a shared target, MCD and WER of free-running
synthesis at the end (the evaluate stage), and wall time. A pair's speed-up is measured on the
validation curves: the target is the worse of the two runs' best val_mel_loss, and the factor is
(steps the reference needs to reach it) / (steps the other run needs); it is also given in
utterances trained on, since a step of the documented recipe (gradient accumulation 2) trains on
twice the utterances of a step of the replaced one.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.common.atomic import write_json
from pipeline.config import load_params

REPO = Path(__file__).resolve().parents[1]

# The recipe that the documented one replaced, key by key (params.yaml `train`).
BEFORE: dict[str, str] = {
    "train.mel_loss_weight": "35",
    "train.lr_schedule": "noam",
    "train.lr": "1e-4",
    "train.huber_delta": "null",  # plain L1
    "train.mel_label_smoothing": "0",
    "train.stop_label_smoothing": "0",
    "train.adaptive_loss_weights": "false",
    "train.grad_clip": "1.0",
    "train.grad_accumulation": "1",
}

# The demo's learning rate when the study ran (setup.sh's CPU_DEMO then; 1.7e-3 since), against
# params.yaml's 8e-5 for a long GPU run.
DEMO_LR = "1e-3"


@dataclass(frozen=True)
class Run:
    """One experiment: a recipe plus the overrides that make it this run."""

    name: str
    recipe: str  # documented | before
    overrides: dict[str, str] = field(default_factory=dict)
    note: str = ""


RUNS: list[Run] = [
    Run("documented-ar", "documented", note="params.yaml's recipe, autoregressive decoder"),
    Run("before-ar", "before", note="the replaced recipe, autoregressive decoder"),
    Run("documented-ar-noattn", "documented", {"train.attention_loss_weight": "0"}, "no attention loss"),
    Run("before-ar-noattn", "before", {"train.attention_loss_weight": "0"}, "no attention loss"),
    Run("documented-par", "documented", {"model.decoder": "parallel"}, "parallel decoder"),
    Run("before-par", "before", {"model.decoder": "parallel"}, "parallel decoder"),
    Run("documented-ar-lr1e-3", "documented", {"train.lr": DEMO_LR}, "the CPU demo's learning rate"),
    Run("before-ar-lr1e-3", "before", {"train.lr": DEMO_LR}, "the CPU demo's learning rate"),
] + [
    # Ablations at the demo learning rate: the documented recipe with one of the old choices back
    # (the replaced schedule keeps the demo's peak so that only its shape changes).
    Run(
        f"documented-ar-lr1e-3-old-{label}",
        "documented",
        {"train.lr": DEMO_LR, **{k: BEFORE[k] for k in keys}},
        f"documented at lr 1e-3, but {label}: old",
    )
    for label, keys in [
        ("schedule", ["train.lr_schedule"]),
        ("l1", ["train.huber_delta"]),
        ("smoothing", ["train.mel_label_smoothing", "train.stop_label_smoothing"]),
        ("adaptive", ["train.adaptive_loss_weights"]),
        ("mel35", ["train.mel_loss_weight"]),
        ("clip", ["train.grad_clip"]),
        ("accumulation", ["train.grad_accumulation"]),
    ]
]

# The pairs whose speed-up the table reports: (reference, compared).
PAIRS: list[tuple[str, str]] = [
    ("before-ar", "documented-ar"),
    ("before-ar-noattn", "documented-ar-noattn"),
    ("before-par", "documented-par"),
    ("documented-ar-noattn", "documented-ar"),
    ("before-ar-noattn", "before-ar"),
    ("documented-ar", "documented-ar-lr1e-3"),
    ("before-ar-lr1e-3", "documented-ar-lr1e-3"),
] + [
    (f"documented-ar-lr1e-3-old-{x}", "documented-ar-lr1e-3")
    for x in ("schedule", "l1", "smoothing", "adaptive", "mel35", "clip", "accumulation")
]


def budget(steps: int, val_every: int) -> dict[str, str]:
    """The overrides every run shares: a CPU budget of `steps` optimizer steps."""
    warmup = max(1, steps // 10)
    return {
        "model.size": "tiny",
        "train.max_steps": str(steps),
        "train.batch_size": "16",
        "train.num_workers": "2",
        "train.warmup_steps": str(warmup),
        "train.restart_period": str(steps - warmup),  # one cosine cycle over the rest
        "train.kl_warmup_steps": str(max(1, steps // 4)),
        "train.val_every": str(val_every),
        "train.checkpoint_every": str(steps),
        "train.early_stop_patience": str(10**6),  # the same budget for every run
        "train.device": "cpu",
        "eval.utterances": "10",  # free-running scores at the end; the curves carry the study
    }


def overrides_of(run: Run, steps: int, val_every: int, seed: int) -> dict[str, str]:
    """Every -S override of one run, in the order they apply."""
    out = budget(steps, val_every)
    if run.recipe == "before":
        out.update(BEFORE)
    out.update(run.overrides)
    out["train.seed"] = str(seed)
    return out


def read_curve(tsv: Path) -> list[tuple[int, float]]:
    """(step, value) rows of a dvclive plot file."""
    with tsv.open() as f:
        return [(int(r["step"]), float(r[tsv.stem])) for r in csv.DictReader(f, delimiter="\t")]


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first validation step (1-based step count) whose val_mel_loss is at or below target."""
    for step, value in curve:
        if value <= target + 1e-12:
            return step + 1
    return None


def at_step(curve: list[tuple[int, float]], step: int) -> float | None:
    """val_mel_loss at the validation nearest to `step` (1-based) at or before it."""
    before = [v for s, v in curve if s + 1 <= step]
    return before[-1] if before else None


def speedup(
    ref: list[tuple[int, float]], other: list[tuple[int, float]], ref_batch: int, other_batch: int
) -> dict[str, float | None]:
    """How many times fewer steps `other` needs than `ref` to reach the worse of their best
    validation losses (>1: `other` converges faster), and the same counted in utterances
    trained on (steps x utterances per step), which is what the steps cost."""
    target = max(min(v for _, v in ref), min(v for _, v in other))
    s_ref, s_other = steps_to_reach(ref, target), steps_to_reach(other, target)
    factor = s_ref / s_other if s_ref and s_other else None
    by_data = factor * ref_batch / other_batch if factor else None
    return {
        "target": target,
        "steps_reference": s_ref,
        "steps_compared": s_other,
        "factor": factor,
        "factor_by_utterances": by_data,
    }


def utterances_per_step(run: dict, train: dict) -> int:
    """batch_size x grad_accumulation of a finished run (`train`, params.yaml's section, where
    the run did not override them)."""
    o = run["overrides"]
    return int(o.get("train.batch_size", train["batch_size"])) * int(
        o.get("train.grad_accumulation", train["grad_accumulation"])
    )


def run_experiment(name: str, overrides: dict[str, str]) -> None:
    """`dvc exp run` one experiment from HEAD's params.yaml (an older one of that name is removed)."""
    subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=REPO, check=True)
    subprocess.run(["dvc", "exp", "remove", name], cwd=REPO, capture_output=True)
    cmd = ["dvc", "exp", "run", "-n", name]
    for k, v in overrides.items():
        cmd += ["-S", f"{k}={v}"]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def collect(run: Run, overrides: dict[str, str]) -> dict:
    """The figures of the run that just finished in the workspace."""
    curve = read_curve(REPO / "dvclive/plots/metrics/val_mel_loss.tsv")
    metrics = json.loads((REPO / "dvclive/metrics.json").read_text())
    ev = json.loads((REPO / "reports/eval.json").read_text())
    return {
        "recipe": run.recipe,
        "note": run.note,
        "overrides": overrides,
        "curve": curve,
        "final_val_mel_loss": curve[-1][1],
        "best_val_mel_loss": min(v for _, v in curve),
        "steps": metrics["steps"],
        "wall_seconds": metrics["wall_seconds"],
        "steps_per_s": metrics["steps"] / metrics["wall_seconds"],
        "mcd": ev["mcd"]["model"],
        "mcd_ceiling": ev["mcd"]["vocoder_ceiling"],
        "wer": ev.get("wer", {}).get("synthesized"),
        "wer_vocoded_truth": ev.get("wer", {}).get("vocoded_truth"),
        "wer_held_back": ev.get("wer", {}).get("held_back"),
        "length_ratio_error": ev["length_ratio_error"],
        "rtf_model": ev["rtf"]["model"],
    }


def fmt(v: float | None, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def table(results: dict, steps: int) -> str:
    """Markdown: one row per run, then one row per pair."""
    marks = [steps // 3, 2 * steps // 3, steps]
    lines = [
        "| run | " + " | ".join(f"val@{m}" for m in marks) + " | best val | MCD dB | WER | WER held-back | steps/s |",
        "|---|" + "---|" * (len(marks) + 5),
    ]
    for key, r in results["runs"].items():
        vals = " | ".join(fmt(at_step([tuple(x) for x in r["curve"]], m)) for m in marks)
        lines.append(
            f"| {key} | {vals} | {fmt(r['best_val_mel_loss'])} | {fmt(r['mcd'], '.2f')} | "
            f"{fmt(r['wer'])} | {fmt(r['wer_held_back'])} | {fmt(r['steps_per_s'], '.2f')} |"
        )
    lines += [
        "",
        "| reference → compared | target val | steps (ref) | steps (compared) | speed-up in steps | "
        "in utterances trained on |",
        "|---|---|---|---|---|---|",
    ]
    for p in results["pairs"]:
        lines.append(
            f"| {p['reference']} → {p['compared']} | {fmt(p['target'])} | {p['steps_reference'] or '–'} | "
            f"{p['steps_compared'] or '–'} | {fmt(p['factor'], '.2f')}× | "
            f"{fmt(p.get('factor_by_utterances'), '.2f')}× |"
        )
    return "\n".join(lines)


def pairs_of(results: dict) -> list[dict]:
    """The speed-up of every pair (per seed) whose two runs are finished."""
    out = []
    train = load_params(REPO / "params.yaml")["train"]
    for seed in results["seeds"]:
        for ref, other in PAIRS:
            a, b = results["runs"].get(f"{ref}-s{seed}"), results["runs"].get(f"{other}-s{seed}")
            if a and b:
                s = speedup(
                    [tuple(x) for x in a["curve"]],
                    [tuple(x) for x in b["curve"]],
                    utterances_per_step(a, train),
                    utterances_per_step(b, train),
                )
                out.append({"reference": f"{ref}-s{seed}", "compared": f"{other}-s{seed}", **s})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    ap.add_argument("--val-every", type=int, default=25, help="steps between validations (default 25)")
    ap.add_argument(
        "--runs", default="all", help="comma-separated run names, or all; names: " + ", ".join(r.name for r in RUNS)
    )
    ap.add_argument("--seeds", default="1234", help="comma-separated train.seed values (default 1234)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/convergence.json"))
    ap.add_argument("--table", action="store_true", help="print the table of the finished runs and exit")
    args = ap.parse_args(argv)

    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = json.loads(out.read_text()) if out.exists() else {}
    if results and (results["steps"], results["val_every"]) != (args.steps, args.val_every):
        ap.error(
            f"{out} holds runs of {results['steps']} steps (validation every {results['val_every']}); "
            "pass those, or another --out"
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    results = {
        "steps": args.steps,
        "val_every": args.val_every,
        "before": BEFORE,
        "commit": results.get("commit", commit),
        "seeds": sorted(set(results.get("seeds", [])) | set(seeds)),
        "runs": results.get("runs", {}),
        "pairs": [],
    }
    if not args.table:
        wanted = [r.name for r in RUNS] if args.runs == "all" else args.runs.split(",")
        unknown = set(wanted) - {r.name for r in RUNS}
        if unknown:
            ap.error(f"unknown run(s): {', '.join(sorted(unknown))}")
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"], cwd=REPO).returncode
        if dirty:
            ap.error("params.yaml has uncommitted changes; commit or stash them (each run starts from HEAD's)")
        for seed in seeds:
            for run in (r for r in RUNS if r.name in wanted):
                key = f"{run.name}-s{seed}"
                if key in results["runs"]:
                    print(f"{key}: already measured, skipped", flush=True)
                    continue
                overrides = overrides_of(run, args.steps, args.val_every, seed)
                run_experiment(f"conv-{key}", overrides)
                results["runs"][key] = collect(run, overrides)
                results["pairs"] = pairs_of(results)
                write_json(out, results)
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=REPO, check=True)
    results["pairs"] = pairs_of(results)
    if not args.table:
        write_json(out, results)
    print(table(results, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
