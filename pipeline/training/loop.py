"""The training loop: data, trainer, logging, checkpoints, resume. `pipeline/train.py` is the
thin stage around `fit`.

Checkpoints: `models/last.pt` (atomic, every `checkpoint_every` steps, at the end, and on
SIGINT/SIGTERM) holds the whole trainer state plus the data position, and everything needed
to synthesize from it alone (model config, symbol table, normalisation, mel settings);
`models/best.pt` the weights with the best val_mel_loss. A run resumes from last.pt only when
the model, data and training params it was made with equal the current ones (a larger
max_steps, "train longer", is allowed); otherwise the old checkpoint is kept aside as
`models/last-<hash>.pt` and the run starts fresh, saying why — it never continues from
weights trained under other settings. A damaged last.pt (truncated, not a checkpoint, unsafe
to load, or lacking the training state) is renamed to `models/last.pt.damaged-<UTC time>`, never
deleted, and the run starts fresh with one warning line naming it, the reason and where it went.
Checkpoints are read weights-only (pipeline/training/checkpoint.py): no code in one can run.

On resume the dvclive history is cut back to the checkpoint's step first (rows logged between
the checkpoint and a kill are dropped), so no step or validation is logged twice; temporary
files a killed checkpoint write left in models/ are removed.

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
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.config import ModelConfig
from model.tts import HamgaraTTS, TTSBatch
from pipeline.common.atomic import clean_stale_temps
from pipeline.common.hashing import file_digest, stable_hash
from pipeline.common.run_log import (
    StopFlag as _Stop,
)
from pipeline.common.run_log import (
    end_live_step as _end_live_step,
)
from pipeline.common.run_log import (
    open_live as _open_live,
)
from pipeline.common.run_log import (
    save_checkpoint as _save,
)
from pipeline.common.run_log import (
    set_aside_damaged,
    trim_history,
)
from pipeline.common.runtime import resolve_device, worker_context, worker_count
from pipeline.config import TrainConfig, eval_config, store_model_config, train_config
from pipeline.evaluation.free_running import free_running_rows, probe_batch, summarize
from pipeline.features.split import TRAIN, UNSEEN, VAL
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError, load_checkpoint, model_state
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, accumulation_groups, collate
from pipeline.training.distributed import DistContext, init_distributed, parameter_digest, shutdown_distributed
from pipeline.training.step import Trainer
from pipeline.training.warm_start import TABLES, WarmStart, check_compatible, warm_start_state

SYNTHESIS_ATTRS = ("symbols", "frontend", "speakers", "languages", "mel", "mel_mean", "mel_std", "features")


def run_identity(params: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: model and train params, and the data."""
    data = {k: attrs[k] for k in (*SYNTHESIS_ATTRS, "ids", "features", "align")}
    digest = stable_hash(data)
    # max_steps: "train longer" is the same run; log_every changes when figures are read, not
    # what is trained.
    train = {k: v for k, v in params["train"].items() if k not in ("max_steps", "log_every")}
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


RESUME_KEYS = ("trainer", "identity", "epoch", "position", "best_val")
TRAINER_KEYS = ("model", "optimizer", "scaler", "adaptive", "ema", "tracker", "plateau", "early", "step", "rng")


def resumable_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any]:
    """last.pt read safely (load_checkpoint) and checked to hold a whole training state; a
    file that does not is a CheckpointError naming what it lacks."""
    ckpt = load_checkpoint(path, device)
    trainer, identity = ckpt.get("trainer"), ckpt.get("identity")
    well_formed = {
        "trainer": isinstance(trainer, dict),
        "identity": isinstance(identity, dict) and all(isinstance(identity.get(k), dict) for k in ("model", "train")),
    }
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    missing += [f"trainer.{k}" for k in TRAINER_KEYS if isinstance(trainer, dict) and k not in trainer]
    malformed = [k for k, ok in well_formed.items() if k in ckpt and not ok]
    problems = [f"it lacks {', '.join(missing)}"] if missing else []
    problems += [f"its {', '.join(malformed)} is malformed"] if malformed else []
    if problems:
        why = "; ".join(problems)
        raise CheckpointError(f"{path}: not a training checkpoint: {why}")
    return ckpt


@dataclasses.dataclass
class BuiltTrainer:
    """What `build_trainer` makes: the resolved device, the store's attributes, the model
    config, the model and its Trainer."""

    device: torch.device
    attrs: dict[str, Any]
    mcfg: ModelConfig
    model: HamgaraTTS
    trainer: Trainer


def build_trainer(params: dict[str, Any], store_path: Path, ctx: DistContext) -> BuiltTrainer:
    """The configured model and its Trainer, exactly as a training run builds them (the LR
    range test of pipeline/training/lr_range.py builds its own through here too).

    The order is fixed: the model is built right after seeding, so its initial weights are
    those of a training run with the same seed."""
    cfg = train_config(params)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and ctx.active:
        device = torch.device("cuda", ctx.local_rank)
    torch.manual_seed(cfg.seed)
    attrs = FeatureStore(store_path).attrs
    mcfg = store_model_config(params, attrs)
    model = HamgaraTTS(mcfg).to(device)
    for name in cfg.freeze:  # before DDP, which registers only the parameters that train
        getattr(model, name).requires_grad_(False)
    forward: torch.nn.Module = model
    if ctx.active:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    trainer = Trainer(model, cfg, cfg.loss_settings(mcfg.reduction), cfg.loss_weights(), device, ctx, forward)
    return BuiltTrainer(device, attrs, mcfg, model, trainer)


def training_data(
    store_path: Path, cfg: TrainConfig, device: torch.device, ctx: DistContext
) -> tuple[FeatureDataset, BucketBatchSampler, dict[str, Any]]:
    """The training split, its length-bucketed sampler (this rank's shard) and the DataLoader
    settings a training run reads it with."""
    train_set = FeatureDataset(store_path, [TRAIN])
    if len(train_set) == 0:
        raise ValueError(f"{store_path}: no training utterances")
    sampler = BucketBatchSampler(
        train_set.frames,
        cfg.batch_size,
        cfg.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        speakers=train_set.speaker[train_set.indices],
        speaker_balance=cfg.speaker_balance,
    )
    loader_kw: dict[str, Any] = {
        "collate_fn": collate,
        "num_workers": min(cfg.num_workers, worker_count(0)),
        "pin_memory": device.type == "cuda",
        # Its own generator: a loader drawing its worker seed from the global RNG would shift
        # the dropout masks of a resumed run.
        "generator": torch.Generator().manual_seed(cfg.seed),
    }
    if loader_kw["num_workers"] > 0:
        # Not forked from this process: by the first epoch it runs dvclive's, tqdm's and zarr's
        # threads, and a worker forked while one of them holds a lock can hang (issue 29).
        loader_kw["multiprocessing_context"] = worker_context(["pipeline.training.dataset"])
    return train_set, sampler, loader_kw


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
        summary = TrainingRun(ctx, store_path, params, models, live_dir, progress and ctx.is_main, stop_after).run()
    except BaseException:
        # No barrier: the other ranks may be stuck in a collective; torchrun stops them.
        shutdown_distributed(ctx, wait=False)
        raise
    shutdown_distributed(ctx)
    return summary


class TrainingRun:
    """One call of `fit`: builds the model, trainer and data, resumes from last.pt when the run
    identity matches, then steps, validates and checkpoints until done or interrupted.

    The set-up order is fixed: the model is built right after seeding and the RNG states of a
    resumed run are restored after everything that draws from them, so resume is exact."""

    def __init__(
        self,
        ctx: DistContext,
        store_path: Path,
        params: dict[str, Any],
        models: Path,
        live_dir: Path,
        progress: bool,
        stop_after: int | None,
    ) -> None:
        self.ctx, self.store_path, self.params, self.models = ctx, store_path, params, models
        self.live_dir, self.progress, self.stop_after = live_dir, progress, stop_after
        self.cfg = train_config(params)
        self._set_up()
        self._make_data()
        self.identity = run_identity(params, self.attrs)
        if self.cfg.init_from is not None:
            if not Path(self.cfg.init_from).is_file():
                raise CheckpointError(f"{self.cfg.init_from}: no such checkpoint (params.yaml train.init_from)")
            # A base replaced under the same name makes another run: resume must not mix them.
            self.identity["init_from"] = file_digest(Path(self.cfg.init_from))
        self.last, self.best = models / "last.pt", models / "best.pt"
        self.epoch, self.position, self.best_val = 0, 0, float("inf")
        self.resumed, self.elapsed_before = False, 0.0
        self._resume()
        self.warm_start: WarmStart | None = None
        if self.cfg.init_from is not None and not self.resumed:
            self._warm_start(Path(self.cfg.init_from))
        self.synthesis = {k: self.attrs[k] for k in SYNTHESIS_ATTRS}
        self.started = time.perf_counter()
        self.steps_this_call = 0
        self.stopped_early = False
        self.live: Any = None
        self.bar: Any = None
        # The host-side figures of the steps not yet read from the device: frames, wall
        # seconds, padding share (and GPU figures) per step.
        self.host_figures: list[dict[str, float]] = []

    def _set_up(self) -> None:
        """Device, seed, store, model (DDP-wrapped under torchrun) and trainer."""
        built = build_trainer(self.params, self.store_path, self.ctx)
        self.device, self.attrs, self.mcfg = built.device, built.attrs, built.mcfg
        self.model, self.trainer = built.model, built.trainer

    def _make_data(self) -> None:
        """The training set, its sampler and DataLoader settings, and the validation batches."""
        cfg = self.cfg
        self.train_set, self.sampler, self.loader_kw = training_data(self.store_path, cfg, self.device, self.ctx)
        val_set = FeatureDataset(self.store_path, [VAL])
        val_order = (
            BucketBatchSampler(val_set.frames, cfg.batch_size, cfg.seed, shuffle=False).batches(0)
            if len(val_set)
            else []
        )
        self.val_batches = [collate([val_set[i] for i in b])[0] for b in val_order]
        # The same few validation utterances synthesized free-running at every validation.
        self.probe = probe_batch(val_set, val_order, cfg.free_running_utterances)
        # As many unseen-words sentences (the corpus's unseen.txt), so that the gap between text
        # like the training text and text it never had is visible while training (free_unseen/*).
        unseen_set = FeatureDataset(self.store_path, [UNSEEN])
        self.unseen_probe = probe_batch(unseen_set, [list(range(len(unseen_set)))], cfg.free_running_utterances)
        self.stop_tolerance = eval_config(self.params).stop_tolerance

    def _resume(self) -> None:
        """Continue from last.pt when it was made with the same identity; else set it aside.

        A damaged last.pt (truncated, not a checkpoint, a foreign or unsafe file, one that
        lacks the training state) is never deleted and never stops the run: it is renamed to
        `last.pt.damaged-<UTC time>` in the same folder, one warning line names it, the reason
        and where it went, and training starts fresh."""
        if not self.last.is_file():
            return
        try:
            ckpt, damage = resumable_checkpoint(self.last, self.device), None
        except CheckpointError as e:
            ckpt, damage = None, e
        if self.ctx.active:
            torch.distributed.barrier()  # every rank has read last.pt before rank 0 may move it
        if ckpt is None:
            if self.ctx.is_main:
                aside = set_aside_damaged(self.last)
                print(f"train: warning: {damage}; moved it to {aside}; starting fresh")
            return
        diff = _differences(self.identity, ckpt["identity"])
        if diff:
            aside = self.models / f"last-{stable_hash(ckpt['identity'], 10)}.pt"
            if self.ctx.is_main:
                self.last.rename(aside)
                print(
                    f"train: not resuming {self.last}: made with other settings ({', '.join(diff[:8])}); kept as {aside}; starting fresh"
                )
            return
        self.trainer.load_state_dict(ckpt["trainer"])
        self.epoch, self.position, self.best_val = ckpt["epoch"], ckpt["position"], ckpt["best_val"]
        self.elapsed_before = ckpt.get("wall_seconds", 0.0)
        self.resumed = True
        if self.ctx.is_main:
            print(f"train: resuming from {self.last} at step {self.trainer.step}")
            trim_history(self.live_dir, self.trainer.step)

    def _warm_start(self, path: Path) -> None:
        """Load the base checkpoint's weights, re-indexed by name (pipeline/training/warm_start.py);
        the optimizer, schedule, step count and history stay fresh."""
        base = load_checkpoint(path, self.device)
        check_compatible(base, self.mcfg, self.attrs["mel"], str(path))
        names = {t: list(self.attrs[t]) for t in TABLES}
        base_names = {t: list(base[t]) for t in TABLES}
        state, self.warm_start = warm_start_state(model_state(base), base_names, self.model, names, str(path))
        self.model.load_state_dict(state)
        if self.ctx.is_main:
            frozen = f"; frozen: {', '.join(self.cfg.freeze)}" if self.cfg.freeze else ""
            print(f"train: starting from the weights of {path} (fresh optimizer, schedule and history){frozen}")
            for line in self.warm_start.lines():
                print(f"train:   {line}")

    def wall_seconds(self) -> float:
        """Training wall time over every call of this run (resumes included)."""
        return self.elapsed_before + time.perf_counter() - self.started

    def _checkpoint(self) -> None:
        """Write last.pt (rank 0 only): trainer state, data position, and what synthesis needs."""
        if not self.ctx.is_main:
            return
        _save(
            self.last,
            {
                "trainer": self.trainer.state_dict(),
                "epoch": self.epoch,
                "position": self.position,
                "best_val": self.best_val,
                "wall_seconds": self.wall_seconds(),
                "identity": self.identity,
                "model_config": dataclasses.asdict(self.mcfg),
                "params": self.params,
                **self.synthesis,
            },
        )

    def run(self) -> dict[str, Any]:
        """Train to max_steps or early stopping and return the summary; on SIGINT/SIGTERM (or
        `stop_after`) save last.pt and raise KeyboardInterrupt."""
        self.models.mkdir(parents=True, exist_ok=True)
        if self.ctx.is_main:
            # A checkpoint write killed half-way leaves its temp file; nothing else would remove it.
            for stale in clean_stale_temps(self.models):
                print(f"train: removed {stale}, a temporary file left by a killed run")
        self.live = _open_live(self.live_dir, self.resumed, self.trainer.step) if self.ctx.is_main else None
        if self.live is not None and self.warm_start is not None:
            self.live.log_params(
                {"init_from": self.cfg.init_from, "new": self.warm_start.new, "dropped": self.warm_start.dropped}
            )
        self.bar = tqdm(
            total=self.cfg.max_steps, initial=self.trainer.step, desc="train", unit="step", disable=not self.progress
        )
        with _Stop() as stop:
            while self.trainer.step < self.cfg.max_steps and not self.stopped_early:
                if self._train_epoch(stop):
                    self._interrupt()
        return self._finish()

    def _train_epoch(self, stop: _Stop) -> bool:
        """Train on the rest of the current epoch, from the saved position; True when interrupted."""
        batches = self.sampler.batches(self.epoch)
        loader = DataLoader(self.train_set, batch_sampler=batches[self.position :], **self.loader_kw)
        t0 = time.perf_counter()
        for group, paddings in accumulation_groups(loader, self.cfg.grad_accumulation):
            self.position += len(group)
            self._step(group, paddings, t0)
            interrupted = self._after_step(stop)
            if interrupted or self.trainer.step >= self.cfg.max_steps or self.stopped_early:
                return interrupted
            t0 = time.perf_counter()
        self.epoch, self.position = self.epoch + 1, 0
        return False

    def _step(self, group: list[TTSBatch], paddings: list[float], t0: float) -> None:
        """One optimizer step over a group of micro-batches, queued on the device without a host
        read; every `log_every` steps (and before a validation or checkpoint, and at the last
        step) the pending steps are read and logged. Validates when due."""
        # The batch is still on the host: counting its frames reads no device value.
        frames = sum(int(b.frame_mask.sum()) for b in group)
        self.trainer.step_on_device(group)
        step = self.trainer.step
        host = {"frames": float(frames), "padding_share": float(np.mean(paddings))}
        if self.device.type == "cuda":
            _add_gpu_figures(host)
        self.host_figures.append(host)
        # The last step is validated too: a run whose max_steps is not a multiple of val_every
        # (a short `-S train.max_steps=100`, a "train longer" resume) would otherwise end with
        # its last val_every steps unjudged, or with no best.pt at all.
        due = step % self.cfg.val_every == 0 or step == self.cfg.max_steps
        validated = bool(self.val_batches and due)
        read = (
            validated
            or step % self.cfg.log_every == 0
            or step % self.cfg.checkpoint_every == 0
            or step == self.cfg.max_steps
        )
        if read:
            self._read_and_log(t0)
        else:
            host["seconds"] = time.perf_counter() - t0
        if validated:
            self._validate_and_save()
        if read and self.live is not None:
            _end_live_step(self.live, validated)
        self.bar.update(1)

    def _read_and_log(self, t0: float | None = None) -> int:
        """Read the pending steps from the device (one transfer, Trainer.read_logs), log each
        step's row at its own dvclive step, update the progress bar's figures; the number of
        rows. `t0`: when the current step started, if it is one of them. A max_nonfinite streak
        raises TrainingAborted here."""
        rows = self.trainer.read_logs()
        host, self.host_figures = self.host_figures, []
        if t0 is not None:
            # After the read: it is where the host waits for the steps queued since the last.
            host[-1]["seconds"] = time.perf_counter() - t0
        if not rows:
            return 0
        # Throughput over the interval: per-step wall times between reads are launch times on
        # a GPU, only their sum (the read's wait included) is the device's.
        frames_per_s = sum(h["frames"] for h in host) / max(sum(h["seconds"] for h in host), 1e-9)
        first = self.trainer.step - len(rows)
        for i, (log, fig) in enumerate(zip(rows, host)):
            log.update({k: v for k, v in fig.items() if k not in ("frames", "seconds")})
            log["frames_per_s"] = frames_per_s
            if self.live is not None:
                # dvclive step k - 1 holds optimizer step k's row (run_log.trim_history).
                self.live.step = first + i
                for k, v in log.items():
                    if np.isfinite(v):
                        self.live.log_metric(f"train/{k}", v)
        last = rows[-1]
        self.bar.set_postfix(loss=f"{last.get('loss_ema', float('nan')):.3f}", lr=f"{last['lr']:.1e}")
        return len(rows)

    def _validate_and_save(self) -> None:
        """Validate, log, keep best.pt on a new best val_mel_loss, note early stopping."""
        val = self.trainer.validate(self.val_batches)
        if self.probe is not None and self.ctx.is_main:
            val.update(summarize(free_running_rows(self.model, self.probe.to(self.device), self.stop_tolerance)))
        if self.unseen_probe is not None and self.ctx.is_main:
            rows = free_running_rows(self.model, self.unseen_probe.to(self.device), self.stop_tolerance)
            val.update({k.replace("free/", "free_unseen/", 1): v for k, v in summarize(rows).items()})
        val["val/wall_seconds"] = self.wall_seconds()
        if self.live is not None:
            for k, v in val.items():
                named = k == "val_mel_loss" or k.startswith(("val/", "free/", "free_unseen/"))
                self.live.log_metric(k if named else f"val/{k}", v)
        if val["val_mel_loss"] < self.best_val:
            self.best_val = val["val_mel_loss"]
            if self.ctx.is_main:
                _save(
                    self.best,
                    {
                        "model": self.model.state_dict(),
                        "model_config": dataclasses.asdict(self.mcfg),
                        "step": self.trainer.step,
                        "val_mel_loss": self.best_val,
                        **self.synthesis,
                    },
                )
        self.stopped_early = bool(val["stop"])

    def _after_step(self, stop: _Stop) -> bool:
        """Save last.pt every checkpoint_every steps; True when any rank was asked to stop."""
        self.steps_this_call += 1
        if self.trainer.step % self.cfg.checkpoint_every == 0:
            self._checkpoint()
        # A collective: every rank takes part, so all of them stop at the same step.
        return self.ctx.any_true(
            stop.signal is not None or (self.stop_after is not None and self.steps_this_call >= self.stop_after)
        )

    def _interrupt(self) -> None:
        """Log the steps not read yet, save last.pt, close the outputs and raise KeyboardInterrupt."""
        if self._read_and_log() and self.live is not None:
            _end_live_step(self.live, False)
        self._checkpoint()
        self.bar.close()
        if self.live is not None:
            self.live.end()
        raise KeyboardInterrupt(f"stopped by signal at step {self.trainer.step}; {self.last} saved, rerun to resume")

    def _finish(self) -> dict[str, Any]:
        """Final last.pt, the check that the ranks hold the same weights, and the summary."""
        # Every way here (max_steps, early stopping) has just read the steps; this is a guard.
        if self._read_and_log() and self.live is not None:
            _end_live_step(self.live, False)
        self.bar.close()
        self._checkpoint()
        digests = self.ctx.gather(parameter_digest(self.model))
        if max(digests) - min(digests) > 1e-6 * max(1.0, abs(digests[0])):
            raise RuntimeError(f"train: data-parallel ranks ended with different weights (digests {digests})")
        summary = {
            "steps": self.trainer.step,
            "best_val_mel_loss": self.best_val,
            "skipped_steps": self.trainer.skipped,
            "early_stopped": self.stopped_early,
            "ranks": self.ctx.world_size,
            "wall_seconds": round(self.wall_seconds(), 1),
        }
        if self.live is not None:
            for k, v in summary.items():
                self.live.summary[k] = v
            self.live.end()
        return summary


def _add_gpu_figures(log: dict[str, float]) -> None:
    """Peak GPU memory and, where NVML answers, utilization."""
    log["gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    try:
        log["gpu_utilization"] = float(torch.cuda.utilization())
    except Exception:  # pynvml missing or not permitted: skip the figure
        pass
