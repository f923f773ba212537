"""How training step time grows with batch size and utterance length, and how precompute time
and memory grow with corpus size.

    python -m benchmarks.scaling step [--decoders autoregressive,parallel] [--size tiny] [--device auto]
        [--lengths 256,512,1024,2048] [--compare model.frame_attention_window=64]
    python -m benchmarks.scaling precompute [--manifest data/manifest.parquet] [--multiples 1,4,16]

`step`: the real Trainer on synthetic batches of exact shapes (random normalised mels, tokens
spread evenly over the frames, 6 frames per token — the demo's mean), so that only the shape
varies: batch sizes 4..32 at 384 frames, then `--lengths` frames at batch 8. Each point is the
mean of `--steps` steps after one untimed step. The growth exponent is the slope of
log(seconds) against log(size) between the first and last points: 1 is linear. `--compare
KEY=VALUE` also times each decoder with that params.yaml override (e.g. the parallel decoder's
frame window), point by point alternating with the plain configuration, so before and after
come from one run.

`precompute`: the whole precompute stage (features, aligner training, extraction) on the
manifest repeated 1x, 4x, 16x (the same files under new ids), each in a fresh process; wall
time, seconds per utterance, and peak resident memory of the main process and the largest
worker. The aligner trains a fixed `align.steps`, so its share shrinks as the corpus grows.

Prints tables and writes JSON (default benchmarks/results/scaling_<part>.json).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.decoders import set_param
from benchmarks.precompute_throughput import peak_memory_run, repeated_manifest
from benchmarks.train_throughput import build_trainer, params_for, timed_steps
from model.tts import TTSBatch
from pipeline.common.atomic import write_json
from pipeline.common.runtime import resolve_device
from pipeline.config import load_params, model_config

REPO = Path(__file__).resolve().parents[1]

N_SYMBOLS, N_MELS, FRAMES_PER_TOKEN = 60, 80, 6


def synthetic_batch(batch: int, frames: int, seed: int) -> TTSBatch:
    """A batch of `batch` utterances of exactly `frames` frames each."""
    g = torch.Generator().manual_seed(seed)
    n = max(1, frames // FRAMES_PER_TOKEN)
    durations = torch.full((batch, n), frames // n, dtype=torch.long)
    durations[:, -1] += frames - durations.sum(1)
    return TTSBatch(
        tokens=torch.randint(1, N_SYMBOLS, (batch, n), generator=g),
        token_mask=torch.ones(batch, n, dtype=torch.bool),
        speakers=torch.zeros(batch, dtype=torch.long),
        languages=torch.zeros(batch, dtype=torch.long),
        mels=torch.randn(batch, frames, N_MELS, generator=g),
        frame_mask=torch.ones(batch, frames, dtype=torch.bool),
        durations=durations,
    )


def seconds_per_step(params: dict, batch: TTSBatch, device: torch.device, steps: int) -> float:
    """Mean wall seconds of `steps` Trainer steps on `batch` (after one untimed step)."""
    trainer = build_trainer(params, model_config(params, N_SYMBOLS, 1, 1, N_MELS), device)
    batch = batch.to(device)
    trainer.train_step([batch])
    return timed_steps(trainer, [batch] * steps, device) / steps


def exponent(points: list[tuple[int, float]]) -> float:
    """Slope of log(seconds) over log(size) between the first and the last point."""
    (x0, y0), (x1, y1) = points[0], points[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def step_scaling(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    device = resolve_device(args.device)
    lengths = [int(x) for x in args.lengths.split(",")]
    out: dict = {"device": str(device), "size": args.size, "steps": args.steps, "decoders": {}}
    for decoder in args.decoders.split(","):
        configs = {decoder: params_for(params, decoder, args.size, batch_size=8, mixed_precision=True)}
        if args.compare:
            changed = copy.deepcopy(configs[decoder])
            set_param(changed, *args.compare.split("=", 1))
            configs[f"{decoder} {args.compare}"] = changed
        by_batch: dict[str, list] = {name: [] for name in configs}
        by_length: dict[str, list] = {name: [] for name in configs}
        for b in (4, 8, 16, 32):
            for name, p in configs.items():
                by_batch[name].append((b, seconds_per_step(p, synthetic_batch(b, 384, b), device, args.steps)))
        for t in lengths:
            for name, p in configs.items():
                by_length[name].append((t, seconds_per_step(p, synthetic_batch(8, t, t), device, args.steps)))
        for name in configs:
            out["decoders"][name] = scaling_table(name, args, device, by_batch[name], by_length[name])
    return out


def scaling_table(name: str, args: argparse.Namespace, device: torch.device, by_batch: list, by_length: list) -> dict:
    """One configuration's points and exponents, printed as markdown tables."""
    r = {
        "batch_at_384_frames": [{"batch": b, "seconds": s, "frames_per_s": b * 384 / s} for b, s in by_batch],
        "frames_at_batch_8": [{"frames": t, "seconds": s, "frames_per_s": 8 * t / s} for t, s in by_length],
        "batch_exponent": exponent(by_batch),
        "length_exponent": exponent(by_length),
    }
    print(f"\n## {name} ({args.size}, {device})")
    print("| batch (384 frames) | s/step | frames/s |\n|---|---|---|")
    for x in r["batch_at_384_frames"]:
        print(f"| {x['batch']} | {x['seconds']:.3f} | {x['frames_per_s']:,.0f} |")
    print(f"growth exponent over batch size: {r['batch_exponent']:.2f}")
    print("| frames (batch 8) | s/step | frames/s |\n|---|---|---|")
    for x in r["frames_at_batch_8"]:
        print(f"| {x['frames']} | {x['seconds']:.3f} | {x['frames_per_s']:,.0f} |")
    print(f"growth exponent over utterance length: {r['length_exponent']:.2f}", flush=True)
    return r


def precompute_scaling(args: argparse.Namespace) -> dict:
    multiples = [int(m) for m in args.multiples.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for m in multiples:
            manifest = repeated_manifest(Path(args.manifest), m, tmp / f"x{m}.parquet")
            t0 = time.perf_counter()
            r = peak_memory_run(manifest, Path(args.params), tmp / f"x{m}")
            wall = time.perf_counter() - t0
            rows.append(
                {
                    "multiple": m,
                    **r,
                    "wall_seconds": round(wall, 1),
                    "seconds_per_utterance": r["seconds"] / r["utterances"],
                }
            )
            print(
                f"x{m}: {r['utterances']} utterances, {r['seconds']:.1f} s, main {r['main_peak_mib']} MiB, "
                f"largest worker {r['worker_peak_mib']} MiB",
                flush=True,
            )
    first, last = rows[0], rows[-1]
    out = {
        "rows": rows,
        "time_exponent": exponent([(first["utterances"], first["seconds"]), (last["utterances"], last["seconds"])]),
        "marginal_seconds_per_utterance": (last["seconds"] - first["seconds"])
        / (last["utterances"] - first["utterances"]),
        "memory_growth": (last["main_peak_mib"] + last["worker_peak_mib"])
        / (first["main_peak_mib"] + first["worker_peak_mib"]),
    }
    print("\n| corpus | utterances | seconds | s per utterance | main MiB | worker MiB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| x{r['multiple']} | {r['utterances']:,} | {r['seconds']:.1f} | {r['seconds_per_utterance']:.4f} | "
            f"{r['main_peak_mib']} | {r['worker_peak_mib']} |"
        )
    print(
        f"time exponent {out['time_exponent']:.2f} (1 = linear), marginal {out['marginal_seconds_per_utterance']:.4f} s "
        f"per utterance, memory x{out['memory_growth']:.2f} for x{multiples[-1] // multiples[0]} the data"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    s = sub.add_parser("step", help="training step time against batch size and utterance length")
    s.add_argument("--decoders", default="autoregressive,parallel")
    s.add_argument("--size", default="tiny")
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--device", default="auto")
    s.add_argument("--lengths", default="256,512,1024,2048", help="utterance lengths in frames (batch 8)")
    s.add_argument("--compare", default=None, help="KEY=VALUE: also time each decoder with this override")
    c = sub.add_parser("precompute", help="precompute time and memory against corpus size")
    c.add_argument("--manifest", default=str(REPO / "data/manifest.parquet"))
    c.add_argument("--multiples", default="1,4,16")
    for p in (s, c):
        p.add_argument("--params", default=str(REPO / "params.yaml"))
        p.add_argument("--out", default=None, help="default benchmarks/results/scaling_<part>.json")
    args = ap.parse_args(argv)
    result = step_scaling(args) if args.part == "step" else precompute_scaling(args)
    out = Path(args.out or REPO / f"benchmarks/results/scaling_{args.part}.json")
    write_json(out, result)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
