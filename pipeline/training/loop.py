"""The training loop: data, trainer, logging, checkpoints, resume. `pipeline/train.py` is the
thin stage around `fit`.

Checkpoints: `models/last.pt` (atomic, every `checkpoint_every` steps, at the end, and on
SIGINT/SIGTERM) holds the whole trainer state plus the data position, and everything needed
to synthesize from it alone (model config, symbol table, normalisation, mel settings);
`models/best.pt` the weights with the best val_mel_loss. A run resumes from last.pt only when
the model, data and training params it was made with equal the current ones (a larger
max_steps, "train longer", is allowed); otherwise the old checkpoint is kept aside as
`models/last-<hash>.pt` and the run starts fresh, saying why — it never continues from
weights trained under other settings.

Data parallel: launched as `torchrun --nproc_per_node N -m pipeline.train`, each process trains
on its shard of the batches (BucketBatchSampler's rank/world_size) with the model wrapped in
DistributedDataParallel; rank 0 alone logs, shows progress and writes checkpoints; every rank
validates on the whole validation split, so the plateau reducer and early stopping decide the
same everywhere; a signal on any rank stops all of them at the same step. At the end the
ranks compare weight fingerprints and the run fails loudly if they drifted apart. Resume is
exact for a single process; a data-parallel resume restores rank 0's RNG on every rank.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.tts import HamgaraTTS, TTSBatch
from pipeline.common.atomic import atomic_path
from pipeline.common.runtime import resolve_device, worker_count
from pipeline.config import store_model_config, train_config
from pipeline.features.split import TRAIN, VAL
from pipeline.features.store import FeatureStore
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, collate
from pipeline.training.distributed import DistContext, init_distributed, parameter_digest, shutdown_distributed
from pipeline.training.step import Trainer

SYNTHESIS_ATTRS = ("symbols", "frontend", "speakers", "languages", "mel", "mel_mean", "mel_std", "features")


def run_identity(params: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: model and train params, and the data."""
    data = {k: attrs[k] for k in (*SYNTHESIS_ATTRS, "ids", "features", "align")}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    train = {k: v for k, v in params["train"].items() if k != "max_steps"}
    return {"model": params["model"], "train": train, "data": digest}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for section in a:
        if isinstance(a[section], dict):
            out += [
                f"{section}.{k}"
                for k in sorted(set(a[section]) | set(b.get(section, {})))
                if a[section].get(k) != b.get(section, {}).get(k)
            ]
        elif a[section] != b.get(section):
            out.append(section)
    return out


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step (then it saves)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _open_live(live_dir: Path, resumed: bool, step: int) -> Any:
    from dvclive import Live

    live = Live(str(live_dir), resume=resumed, dvcyaml=False, save_dvc_exp=False)
    live.step = step
    return live


def _save(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def fit(
    store_path: Path,
    params: dict[str, Any],
    models: Path,
    live_dir: Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train until max_steps or early stopping; returns the summary. `stop_after` ends the run
    after that many steps of this call, as a signal would (tests use it to interrupt)."""
    ctx = init_distributed(train_config(params).device)
    try:
        summary = _fit(ctx, store_path, params, models, live_dir, progress and ctx.is_main, stop_after)
    except BaseException:
        # No barrier: the other ranks may be stuck in a collective; torchrun stops them.
        shutdown_distributed(ctx, wait=False)
        raise
    shutdown_distributed(ctx)
    return summary


def _fit(
    ctx: DistContext,
    store_path: Path,
    params: dict[str, Any],
    models: Path,
    live_dir: Path,
    progress: bool,
    stop_after: int | None,
) -> dict[str, Any]:
    cfg = train_config(params)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and ctx.active:
        device = torch.device("cuda", ctx.local_rank)
    torch.manual_seed(cfg.seed)
    store = FeatureStore(store_path)
    attrs = store.attrs
    mcfg = store_model_config(params, attrs)
    model = HamgaraTTS(mcfg).to(device)
    forward: torch.nn.Module = model
    if ctx.active:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    trainer = Trainer(model, cfg, cfg.loss_settings(mcfg.reduction), cfg.loss_weights(), device, ctx, forward)

    train_set = FeatureDataset(store_path, [TRAIN])
    val_set = FeatureDataset(store_path, [VAL])
    if len(train_set) == 0:
        raise ValueError(f"{store_path}: no training utterances")
    sampler = BucketBatchSampler(train_set.frames, cfg.batch_size, cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
    loader_kw: dict[str, Any] = {
        "collate_fn": collate,
        "num_workers": min(cfg.num_workers, worker_count(0)),
        "pin_memory": device.type == "cuda",
        # Its own generator: a loader drawing its worker seed from the global RNG would shift
        # the dropout masks of a resumed run.
        "generator": torch.Generator().manual_seed(cfg.seed),
    }
    val_batches = (
        [
            collate([val_set[i] for i in b])[0]
            for b in BucketBatchSampler(val_set.frames, cfg.batch_size, cfg.seed, shuffle=False).batches(0)
        ]
        if len(val_set)
        else []
    )

    identity = run_identity(params, attrs)
    last, best = models / "last.pt", models / "best.pt"
    epoch, position, best_val, resumed, elapsed_before = 0, 0, float("inf"), False, 0.0
    if last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        diff = _differences(identity, ckpt["identity"])
        if ctx.active:
            torch.distributed.barrier()  # every rank has read last.pt before rank 0 may move it
        if diff:
            aside = (
                models
                / f"last-{hashlib.sha256(json.dumps(ckpt['identity'], sort_keys=True, default=str).encode()).hexdigest()[:10]}.pt"
            )
            if ctx.is_main:
                last.rename(aside)
                print(
                    f"train: not resuming {last}: made with other settings ({', '.join(diff[:8])}); kept as {aside}; starting fresh"
                )
        else:
            trainer.load_state_dict(ckpt["trainer"])
            epoch, position, best_val = ckpt["epoch"], ckpt["position"], ckpt["best_val"]
            elapsed_before = ckpt.get("wall_seconds", 0.0)
            resumed = True
            if ctx.is_main:
                print(f"train: resuming from {last} at step {trainer.step}")

    synthesis = {k: attrs[k] for k in SYNTHESIS_ATTRS}
    started = time.perf_counter()

    def wall_seconds() -> float:
        """Training wall time over every call of this run (resumes included)."""
        return elapsed_before + time.perf_counter() - started

    def checkpoint() -> None:
        if not ctx.is_main:
            return
        _save(
            last,
            {
                "trainer": trainer.state_dict(),
                "epoch": epoch,
                "position": position,
                "best_val": best_val,
                "wall_seconds": wall_seconds(),
                "identity": identity,
                "model_config": dataclasses.asdict(mcfg),
                "params": params,
                **synthesis,
            },
        )

    models.mkdir(parents=True, exist_ok=True)
    live = _open_live(live_dir, resumed, trainer.step) if ctx.is_main else None
    steps_this_call = 0
    stopped_early = interrupted = False
    bar = tqdm(total=cfg.max_steps, initial=trainer.step, desc="train", unit="step", disable=not progress)
    with _Stop() as stop:
        while trainer.step < cfg.max_steps and not stopped_early:
            batches = sampler.batches(epoch)
            loader = DataLoader(train_set, batch_sampler=batches[position:], **loader_kw)
            group: list[TTSBatch] = []
            paddings: list[float] = []
            t0 = time.perf_counter()
            for batch, padding in loader:
                group.append(batch)
                paddings.append(padding)
                position += 1
                if len(group) < cfg.grad_accumulation:
                    continue
                frames = sum(int(b.frame_mask.sum()) for b in group)
                log = trainer.train_step(group)
                dt = time.perf_counter() - t0
                log.update({"frames_per_s": frames / dt, "padding_share": float(np.mean(paddings))})
                if device.type == "cuda":
                    log["gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                    try:
                        log["gpu_utilization"] = float(torch.cuda.utilization())
                    except Exception:  # pynvml missing or not permitted: skip the figure
                        pass
                if live is not None:
                    for k, v in log.items():
                        if np.isfinite(v):
                            live.log_metric(f"train/{k}", v)
                if val_batches and trainer.step % cfg.val_every == 0:
                    val = trainer.validate(val_batches)
                    val["val/wall_seconds"] = wall_seconds()
                    if live is not None:
                        for k, v in val.items():
                            live.log_metric(k if k == "val_mel_loss" or k.startswith("val/") else f"val/{k}", v)
                    if val["val_mel_loss"] < best_val:
                        best_val = val["val_mel_loss"]
                        if ctx.is_main:
                            _save(
                                best,
                                {
                                    "model": model.state_dict(),
                                    "model_config": dataclasses.asdict(mcfg),
                                    "step": trainer.step,
                                    "val_mel_loss": best_val,
                                    **synthesis,
                                },
                            )
                    stopped_early = bool(val["stop"])
                if live is not None:
                    live.next_step()
                bar.update(1)
                bar.set_postfix(loss=f"{log.get('loss_ema', float('nan')):.3f}", lr=f"{log['lr']:.1e}")
                group, paddings = [], []
                steps_this_call += 1
                if trainer.step % cfg.checkpoint_every == 0:
                    checkpoint()
                interrupted = ctx.any_true(
                    stop.signal is not None or (stop_after is not None and steps_this_call >= stop_after)
                )
                if interrupted or trainer.step >= cfg.max_steps or stopped_early:
                    break
                t0 = time.perf_counter()
            else:
                epoch, position = epoch + 1, 0
            if interrupted:
                checkpoint()
                bar.close()
                if live is not None:
                    live.end()
                raise KeyboardInterrupt(f"stopped by signal at step {trainer.step}; {last} saved, rerun to resume")
    bar.close()
    checkpoint()
    digests = ctx.gather(parameter_digest(model))
    if max(digests) - min(digests) > 1e-6 * max(1.0, abs(digests[0])):
        raise RuntimeError(f"train: data-parallel ranks ended with different weights (digests {digests})")
    summary = {
        "steps": trainer.step,
        "best_val_mel_loss": best_val,
        "skipped_steps": trainer.skipped,
        "early_stopped": stopped_early,
        "ranks": ctx.world_size,
        "wall_seconds": round(wall_seconds(), 1),
    }
    if live is not None:
        for k, v in summary.items():
            live.summary[k] = v
        live.end()
    return summary
