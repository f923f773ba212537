"""torch.compile of the training step against eager, on the demo's configuration, in one process.

    python -m benchmarks.compile [--store data/features.zarr] [--steps 20] [--seeds 1234,7]
        [--dynamic 1] [--threads 1] [--device cpu] [--out benchmarks/results/compile.json]

For each seed: two Trainers from the same initial weights (params.yaml + setup.sh's CPU_DEMO,
`train.seed` set to the seed), one eager and one whose forward is `torch.compile(model,
dynamic=...)` (inductor), take `--steps` optimizer steps on the same preloaded training batches
(length-bucketed, grad accumulation as configured). Reported per seed: the compiled run's
first-step seconds (tracing and code generation), the seconds per step of both over the steps
after the first five (the ratio compiled / eager: below 1 pays), the number of graphs dynamo
compiled (recompiles for new shapes show here), both loss rows and their largest relative
difference. The rows differ by dropout's masks alone when the compiled step is right (inductor
draws its own random numbers), so a compiled row that stops falling where eager's falls is a
wrong step, not noise. Writes JSON; the figures and the decision are in docs/measurements.md.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from benchmarks.cuda_check import demo_params
from benchmarks.train_throughput import build_trainer, preload, sync
from pipeline.common.atomic import write_json
from pipeline.config import store_model_config
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
# Steps whose time is left out of the per-step mean: the first ones compile (and recompile
# for the first few shapes) and warm the allocator.
WARM_STEPS = 5


def run_seed(params: dict[str, Any], store: Path, steps: int, dynamic: bool, device: torch.device) -> dict[str, Any]:
    """Eager and compiled training from the same weights on the same batches: times and losses."""
    cfg = params["train"]
    attrs = FeatureStore(store).attrs
    mcfg = store_model_config(params, attrs)
    count = steps * cfg["grad_accumulation"]
    batches = [b.to(device) for b in preload(store, TRAIN, cfg["batch_size"], cfg["seed"], count)]
    groups = [batches[i : i + cfg["grad_accumulation"]] for i in range(0, count, cfg["grad_accumulation"])]
    out: dict[str, Any] = {}
    for mode in ("eager", "compiled"):
        trainer = build_trainer(params, mcfg, device)
        torch.manual_seed(cfg["seed"])
        if mode == "compiled":
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            trainer.forward_module = torch.compile(trainer.model, dynamic=dynamic)
        seconds, losses = [], []
        for group in groups:
            sync(device)
            t0 = time.perf_counter()
            log = trainer.train_step(group)
            sync(device)
            seconds.append(time.perf_counter() - t0)
            losses.append(log.get("loss", float("nan")))
        row: dict[str, Any] = {
            "first_step_seconds": round(seconds[0], 3),
            "seconds_per_step": sum(seconds[WARM_STEPS:]) / max(len(seconds) - WARM_STEPS, 1),
            "loss": [round(x, 5) for x in losses],
        }
        if mode == "compiled":
            row["graphs"] = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        out[mode] = row
    eager, compiled = out["eager"]["loss"], out["compiled"]["loss"]
    out["ratio_compiled_over_eager"] = out["compiled"]["seconds_per_step"] / out["eager"]["seconds_per_step"]
    out["largest_relative_loss_difference"] = max(abs(c - e) / abs(e) for e, c in zip(eager, compiled))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", default="1234,7")
    ap.add_argument("--dynamic", type=int, default=1, help="1: symbolic shapes (no recompile per batch shape)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/compile.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    base = demo_params(Path(args.params))
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "device": args.device,
        "threads": args.threads,
        "dynamic": bool(args.dynamic),
        "steps": args.steps,
        "seeds": {},
    }
    for seed in (int(s) for s in args.seeds.split(",")):
        params = copy.deepcopy(base)
        params["train"]["seed"] = seed
        params["train"]["device"] = args.device
        try:
            result = run_seed(params, Path(args.store), args.steps, bool(args.dynamic), device)
        except Exception as e:  # a compiler failure is a finding to record, not a crash
            result = {"error": f"{type(e).__name__}: {e}".splitlines()[0], "traceback": traceback.format_exc()[-2000:]}
        report["seeds"][str(seed)] = result
        write_json(Path(args.out), report)
        if "error" in result:
            print(f"seed {seed}: {result['error']}")
            continue
        print(
            f"seed {seed}: eager {result['eager']['seconds_per_step']:.3f} s/step, compiled "
            f"{result['compiled']['seconds_per_step']:.3f} (x{result['ratio_compiled_over_eager']:.2f}), first compiled "
            f"step {result['compiled']['first_step_seconds']:.0f} s, {result['compiled'].get('graphs')} graphs; "
            f"loss after {args.steps} steps eager {result['eager']['loss'][-1]:.3f}, compiled "
            f"{result['compiled']['loss'][-1]:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
