"""Where the time of one training step goes, for each decoder: forward time per top-level
module, the rest of the step (loss, backward, clipping, optimizer), and torch.profiler's
operators by self time.

    python -m benchmarks.profile_step [--store data/features.zarr] [--decoders autoregressive,parallel]
        [--size tiny] [--batch-size 16] [--steps 10] [--device auto] [--top 12]
        [--demo] [--set model.attention_dropout=0 ...]

`--demo` applies setup.sh's CPU_DEMO overrides first (the configuration the README's first
command trains: scheduled sampling's second pass, the demo's reduction factor and LR), `--set`
any KEY=VALUE after them.

The steps are the real Trainer's (as in benchmarks/train_throughput.py) on preloaded batches of
the training split. Module forward times come from forward hooks (synchronised on CUDA);
"backward + optimizer + loss" is the step's wall time minus the forward.

Two before/afters, each in the same process on the same steps, alternated twice: the
self-attention with `MultiHeadAttention.attend` (torch's fused scaled_dot_product_attention)
swapped back for the path that materialises the weights (softmax of the full score matrix,
dropout on it), and the dropout with model/dropout.py's mask swapped back for torch's own
(`bernoulli_`) — what each used before the profile pointed at it. Prints the tables and writes
JSON (default benchmarks/results/profile_step.json).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

import model.dropout as dropout_module
import model.layers as layers_module
from benchmarks.decoders import cpu_demo, parse_sets, with_overrides
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


@contextlib.contextmanager
def weights_path_self_attention() -> Iterator[None]:
    """Self-attention as before the profile: through the score matrix and its softmax."""
    with mock.patch.object(MultiHeadAttention, "attend", weights_path_attend):
        yield


def torch_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The baseline: torch's dropout, whose CPU mask comes from `bernoulli_`."""
    return F.dropout(x, p, training=training)


@contextlib.contextmanager
def bernoulli_dropout() -> Iterator[None]:
    """Every dropout of the model (the modules and the prenet's calls) through torch's."""
    with (
        mock.patch.object(dropout_module, "dropout", torch_dropout),
        mock.patch.object(layers_module, "dropout", torch_dropout),
    ):
        yield


# name -> (how the path before the change is put back, the keys of the result)
COMPARISONS: dict[str, tuple[Callable[[], contextlib.AbstractContextManager], str, str]] = {
    "self_attention": (weights_path_self_attention, "fused_step_seconds", "weights_path_step_seconds"),
    "dropout": (bernoulli_dropout, "threshold_mask_step_seconds", "bernoulli_step_seconds"),
}


def comparison(name: str, params: dict, attrs: dict, batches: list, device: torch.device) -> dict:
    """Step time now and with the earlier path of `name` put back, alternated twice so that a
    drift in the machine's speed does not favour either."""
    before_path, now_key, before_key = COMPARISONS[name]
    now, before = [], []
    for _ in range(2):
        now.append(step_seconds(params, attrs, batches, device))
        with before_path():
            before.append(step_seconds(params, attrs, batches, device))
    n, b = sum(now) / len(now), sum(before) / len(before)
    return {now_key: n, before_key: b, "speedup": b / n}


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
    ap.add_argument("--no-compare", action="store_true", help="skip the before/afters")
    ap.add_argument("--demo", action="store_true", help="apply setup.sh's CPU_DEMO overrides first")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a params override")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/profile_step.json"))
    args = ap.parse_args(argv)
    params, store, attrs, device = open_store(ap, args)
    overrides = {**(cpu_demo() if args.demo else {}), **parse_sets(args.set)}
    params = with_overrides(params, overrides)
    batches = preload(store, TRAIN, args.batch_size, params["train"]["seed"], args.steps + 1)
    result = {
        "device": str(device),
        "size": args.size,
        "batch_size": args.batch_size,
        "overrides": overrides,
        "decoders": {},
    }
    for decoder in args.decoders.split(","):
        p = params_for(params, decoder, args.size, args.batch_size, mixed_precision=True)
        r = profile_decoder(p, attrs, batches, device, args.top)
        if not args.no_compare:
            for name in COMPARISONS:
                r[name] = comparison(name, p, attrs, batches, device)
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
        for name, (_, now_key, before_key) in COMPARISONS.items():
            if name in r:
                c = r[name]
                print(
                    f"\n{name}: {now_key} {c[now_key] * 1e3:.0f} ms, {before_key} {c[before_key] * 1e3:.0f} ms: "
                    f"{c['speedup']:.2f}x"
                )
    write_json(args.out, result)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
