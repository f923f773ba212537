"""Training throughput for each decoder and model size, against the data loader's, and the
synthesis real-time factor of trained checkpoints.

    python -m benchmarks.train_throughput [--store data/features.zarr] [--decoders autoregressive,parallel]
        [--sizes tiny,small] [--batch-size 16] [--steps 20] [--device auto] [--checkpoint models/best.pt ...]

1. Training: for each decoder x size (x mixed precision off/on on CUDA), `--steps` optimizer
   steps of the real Trainer (the documented recipe's loss terms, adaptive weights, clipping; one
   micro-batch per step) on batches of the training split preloaded into memory, after
   `--warmup` untimed steps. Reports steps/s and frames/s (real, unpadded mel frames); on CUDA
   also peak memory and GPU utilisation (nvidia-smi sampled every 0.2 s while the steps run).
2. Loader: the same batches through the DataLoader that training uses (`train.num_workers`
   processes, capped at the cores) with no model at all: frames/s. The loader is not the
   bottleneck when its frames/s is well above training's (the ratio is printed).
3. Synthesis: for each `--checkpoint`, free-running synthesis of the validation texts, model
   seconds per second of audio (the vocoder is not included; Griffin-Lim's share is in the
   evaluate stage's rtf.vocoder).
Prints a table and writes JSON (default benchmarks/results/train_throughput.json).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from model.config import ModelConfig
from model.tts import HamgaraTTS, TTSBatch
from pipeline.common.atomic import write_json
from pipeline.common.runtime import (
    resolve_device,
    worker_count,
)
from pipeline.config import load_params, store_model_config, train_config
from pipeline.features.split import TRAIN, VAL
from pipeline.features.store import FeatureStore
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, collate
from pipeline.training.step import Trainer

REPO = Path(__file__).resolve().parents[1]


class GpuSampler:
    """Samples nvidia-smi's utilisation of one GPU in a thread; mean() is None without nvidia-smi."""

    def __init__(self, index: int) -> None:
        self.index, self.values, self._stop = index, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        f"--id={self.index}",
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                self.values.append(float(out.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self._stop.wait(0.2)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def params_for(params: dict, decoder: str, size: str, batch_size: int, mixed_precision: bool) -> dict:
    """params.yaml with one decoder, size and batch size, one micro-batch per step."""
    p = copy.deepcopy(params)
    p["model"].update(decoder=decoder, size=size)
    p["train"].update(batch_size=batch_size, grad_accumulation=1, mixed_precision=mixed_precision)
    return p


def build_trainer(params: dict, mcfg: ModelConfig, device: torch.device) -> Trainer:
    """A fresh model (seeded by train.seed) and the real Trainer over it, from params.yaml."""
    cfg = train_config(params)
    torch.manual_seed(cfg.seed)
    model = HamgaraTTS(mcfg).to(device)
    return Trainer(model, cfg, cfg.loss_settings(mcfg.reduction), cfg.loss_weights(), device)


def timed_steps(trainer: Trainer, batches: list[TTSBatch], device: torch.device) -> float:
    """Wall seconds of one optimizer step per batch, synchronised with the device at both ends."""
    sync(device)
    t0 = time.perf_counter()
    for b in batches:
        trainer.train_step([b])
    sync(device)
    return time.perf_counter() - t0


def add_store_arguments(ap: argparse.ArgumentParser, steps: int, steps_help: str) -> None:
    """The options every training benchmark on a features store takes."""
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--decoders", default="autoregressive,parallel")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=steps, help=steps_help)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")


def open_store(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[dict, Path, dict, torch.device]:
    """(params, store path, store attributes, device) from those options; a missing store is a
    usage error that says how to make it."""
    params = load_params(args.params)
    store = Path(args.store)
    if not store.exists():
        ap.error(f"{store}: no features store; run `dvc repro precompute` first")
    return params, store, FeatureStore(store).attrs, resolve_device(args.device)


def preload(store: Path, split: int, batch_size: int, seed: int, count: int) -> list[TTSBatch]:
    """The first `count` length-bucketed batches of a split, collated (training's own order)."""
    ds = FeatureDataset(store, [split])
    batches = BucketBatchSampler(ds.frames, batch_size, seed).batches(0)
    return [collate([ds[i] for i in b])[0] for b in (batches * (1 + count // max(len(batches), 1)))[:count]]


def time_training(params: dict, attrs: dict, batches: list[TTSBatch], device: torch.device, warmup: int) -> dict:
    """steps/s and frames/s of the real Trainer over `batches` (the first `warmup` untimed)."""
    trainer = build_trainer(params, store_model_config(params, attrs), device)
    model = trainer.model
    on_device = [b.to(device) for b in batches]
    for b in on_device[:warmup]:
        trainer.train_step([b])
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = on_device[warmup:]
    with GpuSampler(device.index or 0) if device.type == "cuda" else _Nothing() as gpu:
        seconds = timed_steps(trainer, timed, device)
    frames = sum(int(b.frame_mask.sum()) for b in timed)
    row = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": len(timed),
        "seconds": round(seconds, 3),
        "steps_per_s": len(timed) / seconds,
        "frames_per_s": frames / seconds,
        "amp_dtype": str(trainer.dtype).replace("torch.", "") if trainer.dtype else "fp32",
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        row["gpu_utilization"] = gpu.mean()
    return row


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def loader_throughput(store: Path, batch_size: int, seed: int, workers: int, count: int) -> dict:
    """Frames/s of the training DataLoader alone (reading, collating; no model)."""
    ds = FeatureDataset(store, [TRAIN])
    batches = BucketBatchSampler(ds.frames, batch_size, seed).batches(0)
    batches = (batches * (1 + count // max(len(batches), 1)))[:count]
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=workers)
    frames = 0
    t0 = time.perf_counter()
    for batch, _ in loader:
        frames += int(batch.frame_mask.sum())
    seconds = time.perf_counter() - t0
    return {"workers": workers, "batches": len(batches), "seconds": round(seconds, 3), "frames_per_s": frames / seconds}


def synthesis_rtf(checkpoint: Path, store: Path, device: torch.device, utterances: int) -> dict:
    """Model seconds per second of audio, free-running, over validation texts."""
    from pipeline.evaluation.synthesizer import Synthesizer

    synth = Synthesizer.from_file(checkpoint, device)
    fs = FeatureStore(store)
    split = fs.array("split")
    val = [i for i in range(len(fs)) if int(split[i]) == VAL][:utterances]
    tokens = [fs.tokens(i).tolist() for i in val]
    language = fs.attrs["languages"][int(fs.array("language")[val[0]])]
    hop, sr = synth.mel_settings.hop_length, synth.mel_settings.sample_rate
    synth.synthesize_tokens(tokens[:2], [""] * 2, None, language)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    out = synth.synthesize_tokens(tokens, [""] * len(tokens), None, language)
    sync(device)
    seconds = time.perf_counter() - t0
    audio = sum(u.mel.shape[0] for u in out) * hop / sr
    return {
        "checkpoint": str(checkpoint),
        "decoder": synth.config.decoder,
        "utterances": len(tokens),
        "audio_seconds": round(audio, 2),
        "model_seconds": round(seconds, 3),
        "rtf_model": seconds / audio,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(ap, steps=20, steps_help="timed optimizer steps per configuration")
    ap.add_argument("--sizes", default="tiny,small", help="model.sizes presets (base is slow on a CPU)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, autotuning)")
    ap.add_argument("--loader-batches", type=int, default=60)
    ap.add_argument("--checkpoint", action="append", default=[], help="trained checkpoint(s) for the synthesis RTF")
    ap.add_argument("--rtf-utterances", type=int, default=25)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/train_throughput.json"))
    args = ap.parse_args(argv)

    params, store, attrs, device = open_store(ap, args)
    seed = params["train"]["seed"]
    batches = preload(store, TRAIN, args.batch_size, seed, args.warmup + args.steps)
    amp_settings = [False, True] if device.type == "cuda" else [False]
    rows = []
    for size in args.sizes.split(","):
        for decoder in args.decoders.split(","):
            for amp in amp_settings:
                p = params_for(params, decoder, size, args.batch_size, amp)
                row = {
                    "decoder": decoder,
                    "size": size,
                    "mixed_precision": amp,
                    **time_training(p, attrs, batches, device, args.warmup),
                }
                rows.append(row)
                print(
                    f"{decoder:>14} {size:>5} {row['amp_dtype']:>5}: {row['steps_per_s']:.2f} steps/s, "
                    f"{row['frames_per_s']:,.0f} frames/s",
                    flush=True,
                )
    workers = min(params["train"]["num_workers"], worker_count(0))
    loader = loader_throughput(store, args.batch_size, seed, workers, args.loader_batches)
    synth = [synthesis_rtf(Path(c), store, device, args.rtf_utterances) for c in args.checkpoint]
    result = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "processor": platform.processor(),
        },
        "batch_size": args.batch_size,
        "mean_frames_per_batch": sum(int(b.frame_mask.sum()) for b in batches) / len(batches),
        "training": rows,
        "loader": loader,
        "loader_over_fastest_training": loader["frames_per_s"] / max(r["frames_per_s"] for r in rows),
        "synthesis": synth,
    }
    write_json(args.out, result)

    print(
        "\n| decoder | size | precision | parameters | steps/s | frames/s |"
        + (" peak GiB | GPU util % |" if device.type == "cuda" else "")
    )
    print("|---|---|---|---|---|---|" + ("---|---|" if device.type == "cuda" else ""))
    for r in rows:
        extra = ""
        if device.type == "cuda":
            util = r["gpu_utilization"]
            extra = f" {r['peak_memory_gib']:.2f} | {'–' if util is None else f'{util:.0f}'} |"
        print(
            f"| {r['decoder']} | {r['size']} | {r['amp_dtype']} | {r['parameters']:,} | {r['steps_per_s']:.2f} | "
            f"{r['frames_per_s']:,.0f} |{extra}"
        )
    print(
        f"\nloader alone ({workers} workers): {loader['frames_per_s']:,.0f} frames/s = "
        f"{result['loader_over_fastest_training']:.1f}x the fastest training configuration"
    )
    for s in synth:
        print(
            f"synthesis {s['decoder']}: model RTF {s['rtf_model']:.4f} ({s['utterances']} utterances, "
            f"{s['audio_seconds']} s of audio) from {s['checkpoint']}"
        )
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
