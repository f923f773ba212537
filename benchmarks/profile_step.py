"""Where the time of one training step goes, for each decoder: forward time per top-level
module, the rest of the step (loss, backward, clipping, optimizer), and torch.profiler's
operators by self time.

    python -m benchmarks.profile_step [--store data/features.zarr] [--decoders autoregressive,parallel]
        [--size tiny] [--batch-size 16] [--steps 10] [--device auto] [--top 12]

The steps are the real Trainer's (as in benchmarks/train_throughput.py) on preloaded batches of
the training split. Module forward times come from forward hooks (synchronised on CUDA);
"backward + optimizer + loss" is the step's wall time minus the forward.

The self-attention's before/after, in the same process: the same steps with
`MultiHeadAttention.attend` (torch's fused scaled_dot_product_attention) swapped back for the
path that materialises the weights (softmax of the full score matrix, dropout on it), which
self-attention used before the profile pointed at it. Prints the tables and writes JSON
(default benchmarks/results/profile_step.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.train_throughput import (
    add_store_arguments,
    build_trainer,
    open_store,
    params_for,
    preload,
    sync,
    timed_steps,
)
from model.layers import MultiHeadAttention
from pipeline.common.atomic import write_json
from pipeline.config import store_model_config
from pipeline.features.split import TRAIN

REPO = Path(__file__).resolve().parents[1]


def weights_path_attend(self: MultiHeadAttention, query, key_value, allowed):  # type: ignore[no-untyped-def]
    """The baseline: self-attention through the score matrix and its softmax, as before."""
    return self.forward(query, key_value, allowed)[0]


def step_seconds(params: dict, attrs: dict, batches: list, device: torch.device) -> float:
    """Mean seconds per training step over `batches` (the first one untimed), a fresh model."""
    trainer = build_trainer(params, store_model_config(params, attrs), device)
    trainer.train_step([batches[0]])
    return timed_steps(trainer, batches[1:], device) / (len(batches) - 1)


def attention_comparison(params: dict, attrs: dict, batches: list, device: torch.device) -> dict:
    """Step time with the fused self-attention and with the weights path, alternated twice so
    that a drift in the machine's speed does not favour either."""
    fused_attend = MultiHeadAttention.attend
    fused, weights = [], []
    try:
        for _ in range(2):
            MultiHeadAttention.attend = fused_attend
            fused.append(step_seconds(params, attrs, batches, device))
            MultiHeadAttention.attend = weights_path_attend
            weights.append(step_seconds(params, attrs, batches, device))
    finally:
        MultiHeadAttention.attend = fused_attend
    f, w = sum(fused) / len(fused), sum(weights) / len(weights)
    return {"fused_step_seconds": f, "weights_path_step_seconds": w, "speedup": w / f}


def module_timer(model: torch.nn.Module, device: torch.device) -> dict[str, float]:
    """Adds forward hooks to the model's top-level children; the returned dict accumulates
    each child's forward seconds."""
    seconds: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}
    for name, child in model.named_children():

        def pre(_m, _i, name=name) -> None:
            sync(device)
            started[name] = time.perf_counter()

        def post(_m, _i, _o, name=name) -> None:
            sync(device)
            seconds[name] += time.perf_counter() - started.pop(name)

        child.register_forward_pre_hook(pre)
        child.register_forward_hook(post)
    return seconds


def profile_decoder(params: dict, attrs: dict, batches: list, device: torch.device, top: int) -> dict:
    """Forward seconds per module and the step's total over `batches` (the first one untimed),
    then a torch.profiler pass over the same steps."""
    trainer = build_trainer(params, store_model_config(params, attrs), device)
    model = trainer.model
    batches = [b.to(device) for b in batches]
    trainer.train_step([batches[0]])
    seconds = module_timer(model, device)
    seconds.clear()
    total = timed_steps(trainer, batches[1:], device)
    forward = sum(seconds.values())
    steps = len(batches) - 1
    parts = {f"forward: {k}": v / steps for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}
    parts["loss + backward + clip + optimizer"] = (total - forward) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for b in batches[1:]:
            trainer.train_step([b])
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = sorted(prof.key_averages(), key=lambda e: -getattr(e, key))
    all_self = sum(getattr(e, key) for e in averages)
    ops = [
        {
            "op": e.key,
            "calls": e.count,
            "self_ms_per_step": getattr(e, key) / 1e3 / steps,
            "share": getattr(e, key) / all_self,
        }
        for e in averages[:top]
    ]
    return {
        "step_seconds": total / steps,
        "parts_seconds_per_step": parts,
        "top_ops": ops,
        "frames_per_step": sum(int(b.frame_mask.sum()) for b in batches[1:]) / steps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(ap, steps=10, steps_help="timed optimizer steps per decoder")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--top", type=int, default=12, help="operators listed per decoder")
    ap.add_argument("--no-compare", action="store_true", help="skip the self-attention before/after")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/profile_step.json"))
    args = ap.parse_args(argv)
    params, store, attrs, device = open_store(ap, args)
    batches = preload(store, TRAIN, args.batch_size, params["train"]["seed"], args.steps + 1)
    result = {"device": str(device), "size": args.size, "batch_size": args.batch_size, "decoders": {}}
    for decoder in args.decoders.split(","):
        p = params_for(params, decoder, args.size, args.batch_size, mixed_precision=True)
        r = profile_decoder(p, attrs, batches, device, args.top)
        if not args.no_compare:
            r["self_attention"] = attention_comparison(p, attrs, batches, device)
        result["decoders"][decoder] = r
        print(
            f"\n## {decoder} ({args.size}, batch {args.batch_size}, {r['frames_per_step']:.0f} frames/step): "
            f"{r['step_seconds'] * 1e3:.0f} ms per step"
        )
        print("| part | ms per step | share |\n|---|---|---|")
        for k, v in r["parts_seconds_per_step"].items():
            print(f"| {k} | {v * 1e3:.1f} | {v / r['step_seconds']:.0%} |")
        print("\n| operator | calls | self ms per step | share |\n|---|---|---|---|")
        for o in r["top_ops"]:
            print(f"| {o['op']} | {o['calls']} | {o['self_ms_per_step']:.1f} | {o['share']:.1%} |")
        if "self_attention" in r:
            c = r["self_attention"]
            print(
                f"\nself-attention: fused {c['fused_step_seconds'] * 1e3:.0f} ms per step, weights path "
                f"{c['weights_path_step_seconds'] * 1e3:.0f} ms: {c['speedup']:.2f}x"
            )
    write_json(args.out, result)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
