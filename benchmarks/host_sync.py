"""Host syncs of the training step: steps/s and device-value reads per step of the sync-free
step (`Trainer.step_on_device`, read every `log_every` steps) against the step read at once
(`Trainer.train_step`), in one process on the same batches.

    python -m benchmarks.host_sync [--store data/features.zarr] [--steps 20] [--warmup 5]
        [--rounds 5] [--batch-size 4] [--threads 2] [--device cpu]
        [--out benchmarks/results/host_sync.json]

The configuration is the demo's (params.yaml + setup.sh's CPU_DEMO overrides: the tiny model),
with `--batch-size` utterances per micro-batch. The batches are the store's first training
batches when `--store` exists, else synthetic ones (random tokens, mels and durations of
short-utterance lengths; the step does the same work on them as on real ones). Three
modes, each from the same initial weights and RNG state: `train_step` (one read per step, as
pipeline/training/lr_range.py and the other benchmarks call it), `log_every_1` and
`log_every_10` (`step_on_device`, then `read_logs` every 1 or 10 steps, as the train loop
does). Timed: the steps after `--warmup`, over `--rounds` alternations of the modes; the best
round and the median are reported (the best is the least disturbed by other work). Counted,
in a separate untimed pass: the calls per step of every Tensor method through which Python
reads a device value (item, tolist, cpu, numpy, __bool__, __float__, __int__, __index__).

On a CPU a "sync" costs next to nothing (the ops ran synchronously already), so the steps/s
differ little there: the point is a GPU, where each read drains the launch queue.
benchmarks/cuda_check.py is where a GPU measurement would go. Writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from benchmarks.cuda_check import demo_params
from benchmarks.train_throughput import build_trainer, preload, sync
from model.tts import TTSBatch
from pipeline.common.atomic import write_json
from pipeline.config import model_config, store_model_config
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore
from pipeline.training.step import Trainer

REPO = Path(__file__).resolve().parents[1]
# Every Tensor method through which Python code can read a device value on the host.
SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
MODES = ("train_step", "log_every_1", "log_every_10")
# The synthetic batches' vocabulary and mel size (a store, when there is one, sets its own).
SYNTHETIC = {"symbols": 40, "speakers": 2, "languages": 1, "n_mels": 80}


def synthetic_batch(batch_size: int, n_mels: int, seed: int) -> TTSBatch:
    """Random tokens, mels and durations (summing to each utterance's frames) of demo-like lengths."""
    g = torch.Generator().manual_seed(seed)
    tokens_len = torch.randint(8, 17, (batch_size,), generator=g)
    frames_len = tokens_len * torch.randint(3, 6, (batch_size,), generator=g)
    n, t = int(tokens_len.max()), int(frames_len.max())
    tokens = torch.zeros(batch_size, n, dtype=torch.long)
    durations = torch.zeros(batch_size, n, dtype=torch.long)
    for i in range(batch_size):
        nt, nf = int(tokens_len[i]), int(frames_len[i])
        tokens[i, :nt] = torch.randint(2, SYNTHETIC["symbols"], (nt,), generator=g)
        cuts = torch.sort(torch.randperm(nf - 1, generator=g)[: nt - 1] + 1).values
        bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([nf])])
        durations[i, :nt] = bounds[1:] - bounds[:-1]
    token_mask = torch.arange(n)[None] < tokens_len[:, None]
    frame_mask = torch.arange(t)[None] < frames_len[:, None]
    mels = torch.randn(batch_size, t, n_mels, generator=g) * frame_mask[..., None]
    zeros = torch.zeros(batch_size, dtype=torch.long)
    return TTSBatch(tokens, token_mask, torch.arange(batch_size) % 2, zeros, mels, frame_mask, durations)


def step_groups(params: dict[str, Any], store: Path, count: int) -> tuple[list[list[TTSBatch]], Any, str]:
    """`count` optimizer steps' micro-batch groups, the model config, and where they came from."""
    cfg = params["train"]
    n = count * cfg["grad_accumulation"]
    if store.exists():
        mcfg = store_model_config(params, FeatureStore(store).attrs)
        batches, source = preload(store, TRAIN, cfg["batch_size"], cfg["seed"], n), str(store)
    else:
        s = SYNTHETIC
        mcfg = model_config(params, s["symbols"], s["speakers"], s["languages"], s["n_mels"], (1,))
        batches, source = [synthetic_batch(cfg["batch_size"], s["n_mels"], i) for i in range(n)], "synthetic"
    k = cfg["grad_accumulation"]
    return [batches[i : i + k] for i in range(0, n, k)], mcfg, source


def run_mode(trainer: Trainer, mode: str, groups: list[list[TTSBatch]]) -> None:
    """The steps over `groups` as `mode` takes them (see the module docstring)."""
    every = {"log_every_1": 1, "log_every_10": 10}.get(mode)
    for i, group in enumerate(groups):
        if every is None:
            trainer.train_step(group)
            continue
        trainer.step_on_device(group)
        if (i + 1) % every == 0:
            trainer.read_logs()
    trainer.read_logs()


@contextlib.contextmanager
def counting_reads() -> Iterator[Counter[str]]:
    """Every SYNCS method of torch.Tensor wrapped to count its calls while inside."""
    counts: Counter[str] = Counter()

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    with contextlib.ExitStack() as stack:
        for name in SYNCS:
            stack.enter_context(mock.patch.object(torch.Tensor, name, counting(name, getattr(torch.Tensor, name))))
        yield counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--steps", type=int, default=20, help="timed steps per mode and round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of the three modes")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/host_sync.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = demo_params(Path(args.params))
    params["train"]["device"] = args.device
    params["train"]["batch_size"] = args.batch_size
    seed = params["train"]["seed"]
    groups, mcfg, source = step_groups(params, Path(args.store), args.warmup + args.steps)
    groups = [[b.to(device) for b in g] for g in groups]
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            trainer = build_trainer(params, mcfg, device)
            torch.manual_seed(seed)
            run_mode(trainer, mode, groups[: args.warmup])
            sync(device)
            t0 = time.perf_counter()
            run_mode(trainer, mode, groups[args.warmup :])
            sync(device)
            seconds[mode].append(time.perf_counter() - t0)
    reads: dict[str, dict[str, float]] = {}
    count = min(10, len(groups))
    for mode in MODES:
        trainer = build_trainer(params, mcfg, device)
        torch.manual_seed(seed)
        run_mode(trainer, mode, groups[:1])  # the optimizer's state exists before counting
        with counting_reads() as counts:
            run_mode(trainer, mode, groups[:count])
        reads[mode] = {k: v / count for k, v in sorted(counts.items())} | {"total": sum(counts.values()) / count}
    report: dict[str, Any] = {
        "what": "steps/s and host reads of device values per step: train_step vs step_on_device read every 1 or 10",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "device": args.device,
        "threads": args.threads,
        "batches": source,
        "model_size": params["model"]["size"],
        "decoder": params["model"]["decoder"],
        "batch_size": params["train"]["batch_size"],
        "grad_accumulation": params["train"]["grad_accumulation"],
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "modes": {
            m: {
                "steps_per_s": [round(args.steps / s, 3) for s in seconds[m]],
                "best_steps_per_s": round(args.steps / min(seconds[m]), 3),
                "median_steps_per_s": round(args.steps / statistics.median(seconds[m]), 3),
                "host_reads_per_step": reads[m],
            }
            for m in MODES
        },
    }
    write_json(Path(args.out), report)
    for m in MODES:
        r = report["modes"][m]
        print(
            f"{m:>13}: best {r['best_steps_per_s']:.2f} steps/s, median {r['median_steps_per_s']:.2f} "
            f"(rounds {r['steps_per_s']}), reads/step {reads[m]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
