"""One optimizer step at a time: the training recipe's mechanics, independent of data
loading and logging (the train stage drives it).

Each `train_step` takes `grad_accumulation` micro-batches and: sets the LR from the schedule
(times the plateau scale), anneals the KL weight, applies the adaptive loss-weight factors,
runs forward/backward under mixed precision where asked (bf16 when the GPU supports it,
else fp16 with GradScaler's dynamic loss scaling; fp32 on CPU), clips the global gradient
norm (reporting it before clipping), and skips the update when the loss or the gradient is
not finite — aborting after `max_nonfinite` such steps in a row. `validate` computes
`val_mel_loss` and feeds the plateau reducer and early stopping. Every piece of state is in
`state_dict`, so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import numpy as np
import torch

from model.config import LOSS_TERMS, LossSettings, LossWeights
from model.losses import AdaptiveWeights, combine, kl_weight_schedule
from model.objective import raw_losses, teacher_forced_metrics
from model.tts import HamgaraTTS, TTSBatch
from pipeline.common.stage import RunAborted
from pipeline.config import TrainConfig
from pipeline.training.distributed import DistContext
from pipeline.training.monitors import ConvergenceTracker, EarlyStopping, LossEMA, PlateauReducer
from pipeline.training.schedule import ScheduleConfig, lr_at


class TrainingAborted(RunAborted):
    """Too many non-finite steps in a row: the run cannot recover by skipping."""


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on a GPU that supports it, fp16 on other GPUs, None (fp32) on CPU or when off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def adamw(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where torch has one for the device (CPU and CUDA): the
    same update as the per-parameter loop, in one pass over the parameters instead of a dozen
    small operations for each (benchmarks/profile_step.py measures the difference)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


class Trainer:
    """Owns the model's optimizer and every piece of training state.

    Under data parallelism `forward` is the DistributedDataParallel wrapper of `model` (it
    averages the gradients over ranks during backward) and `dist` the rank context: ranks agree
    on skipping a non-finite step, and the logged losses, EMA, convergence tracker and adaptive
    weights see the mean over ranks, so every rank holds the same state."""

    def __init__(
        self,
        model: HamgaraTTS,
        cfg: TrainConfig,
        settings: LossSettings,
        weights: LossWeights,
        device: torch.device,
        dist: DistContext | None = None,
        forward: torch.nn.Module | None = None,
    ) -> None:
        self.model, self.cfg, self.settings, self.weights, self.device = model, cfg, settings, weights, device
        self.dist = dist or DistContext()
        self.forward_module = forward if forward is not None else model
        self.opt = adamw(model, cfg.lr, device)
        self.dtype = amp_dtype(device, cfg.mixed_precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.adaptive = (
            AdaptiveWeights(list(LOSS_TERMS), cfg.loss_ema, cfg.adaptive_bound, cfg.adaptive_strength)
            if cfg.adaptive_loss_weights
            else None
        )
        self.ema = LossEMA(cfg.loss_ema)
        self.tracker = ConvergenceTracker(cfg.convergence_window, cfg.early_stop_min_delta)
        self.plateau = PlateauReducer(cfg.plateau_factor, cfg.plateau_patience, cfg.early_stop_min_delta)
        self.early = EarlyStopping(cfg.early_stop_patience, cfg.early_stop_min_delta)
        self.step = 0
        self.skipped = 0
        self.nonfinite_streak = 0
        # The LR range test (pipeline/training/lr_range.py) sets each step's LR itself: when
        # not None this replaces the schedule and the plateau scale. Not training state, so
        # it is not in state_dict.
        self.lr_override: float | None = None

    def _forward(self, batch: TTSBatch, factors: dict[str, float] | None, kl_scale: float) -> tuple[Any, dict]:
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            out = self.forward_module(batch, self.sampling_probability(), self.cfg.input_noise)
        raw = raw_losses(out, batch, self.settings)
        return combine(raw, self.weights, factors, kl_scale), {"out": out, "raw": raw}

    def sampling_probability(self) -> float:
        """Scheduled sampling's probability at this step: a linear ramp from 0 to
        `scheduled_sampling` over `scheduled_sampling_steps`, so the decoder first learns from
        true frames and only then from its own."""
        ramp = self.cfg.scheduled_sampling_steps
        return self.cfg.scheduled_sampling * (1.0 if ramp == 0 else min(1.0, self.step / ramp))

    def train_step(self, micro_batches: list[TTSBatch]) -> dict[str, float]:
        """One optimizer step over the micro-batches; returns what to log."""
        lr, kl_scale, factors = self._begin_step()
        finite, total, raw_sum, weighted_sum = self._accumulate(micro_batches, factors, kl_scale)
        grad_norm = self._clip_gradients() if finite else float("nan")
        finite = finite and math.isfinite(grad_norm)
        self._update_or_skip(finite)
        self.scaler.update()
        log: dict[str, float] = {"lr": lr, "grad_norm": grad_norm, "kl_scale": kl_scale, "skipped_steps": self.skipped}
        if finite:
            log.update(self._loss_log(total, raw_sum, weighted_sum, factors))
        self.step += 1
        return log

    def _begin_step(self) -> tuple[float, float, dict[str, float] | None]:
        """Set this step's LR; return it with the KL scale and the adaptive factors."""
        self.model.train()
        lr = self.lr_override
        if lr is None:
            lr = lr_at(self.step, ScheduleConfig.of(self.cfg), self.plateau.scale)
        for group in self.opt.param_groups:
            group["lr"] = lr
        kl_scale = kl_weight_schedule(self.step, self.cfg.kl_warmup_steps)
        factors = self.adaptive.factors() if self.adaptive is not None else None
        self.opt.zero_grad(set_to_none=True)
        return lr, kl_scale, factors

    def _accumulate(
        self, micro_batches: list[TTSBatch], factors: dict[str, float] | None, kl_scale: float
    ) -> tuple[bool, float, dict[str, float], dict[str, float]]:
        """Forward/backward over the micro-batches, each loss divided by their count; returns
        whether every loss was finite on every rank, the total, and the raw and weighted terms."""
        raw_sum: dict[str, float] = {}
        weighted_sum: dict[str, float] = {}
        total = 0.0
        n = len(micro_batches)
        for i, mb in enumerate(micro_batches):
            # DDP: all-reduce the gradients once, on the last micro-batch's backward.
            last = i == n - 1
            sync = (
                contextlib.nullcontext() if last or self.forward_module is self.model else self.forward_module.no_sync()
            )
            with sync:
                terms, _ = self._forward(mb.to(self.device, non_blocking=True), factors, kl_scale)
                loss = terms.total / n
                if not self.dist.all_true(bool(torch.isfinite(loss))):
                    return False, total, raw_sum, weighted_sum
                self.scaler.scale(loss).backward()
            total += loss.item()
            for k, v in terms.raw.items():
                raw_sum[k] = raw_sum.get(k, 0.0) + v.item() / n
            for k, v in terms.weighted.items():
                weighted_sum[k] = weighted_sum.get(k, 0.0) + v.item() / n
        return True, total, raw_sum, weighted_sum

    def _clip_gradients(self) -> float:
        """Unscale and clip the gradients; the global norm before clipping."""
        self.scaler.unscale_(self.opt)
        return float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))

    def _update_or_skip(self, finite: bool) -> None:
        """Apply the update, or drop the gradients and count a skip (aborting after
        `max_nonfinite` skips in a row)."""
        if finite:
            self.scaler.step(self.opt)
            self.nonfinite_streak = 0
            return
        self.opt.zero_grad(set_to_none=True)
        self.skipped += 1
        self.nonfinite_streak += 1
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            raise TrainingAborted(
                f"{self.nonfinite_streak} non-finite steps in a row at step {self.step}: lower train.lr, "
                "check the data (hamgara doctor) or turn off train.mixed_precision"
            )

    def _loss_log(
        self, total: float, raw_sum: dict[str, float], weighted_sum: dict[str, float], factors: dict[str, float] | None
    ) -> dict[str, float]:
        """Average the losses over ranks, update the adaptive weights, EMA and convergence
        tracker; return the loss figures to log."""
        total, raw_sum, weighted_sum = self._mean_over_ranks(total, raw_sum, weighted_sum)
        if self.adaptive is not None:
            # The factors' input excludes the factors and the KL annealing, or they would
            # feed back into themselves.
            base = {k: getattr(self.weights, k) * v for k, v in raw_sum.items()}
            self.adaptive.update(base)
        smoothed = self.ema.update(total)
        self.tracker.update(smoothed)
        slope = self.tracker.slope()
        log = {"loss": total, "loss_ema": smoothed, "plateau": float(self.tracker.plateau)}
        if slope is not None:
            log["loss_slope"] = slope
        log.update({f"raw/{k}": v for k, v in raw_sum.items()})
        log.update({f"weighted/{k}": v for k, v in weighted_sum.items()})
        if factors is not None:
            log.update({f"adaptive/{k}": v for k, v in factors.items()})
        return log

    def _mean_over_ranks(
        self, total: float, raw: dict[str, float], weighted: dict[str, float]
    ) -> tuple[float, dict[str, float], dict[str, float]]:
        keys_r, keys_w = sorted(raw), sorted(weighted)
        values = self.dist.mean([total, *(raw[k] for k in keys_r), *(weighted[k] for k in keys_w)])
        n = len(keys_r)
        return values[0], dict(zip(keys_r, values[1 : 1 + n])), dict(zip(keys_w, values[1 + n :]))

    def validate(self, batches: list[TTSBatch]) -> dict[str, float]:
        """Teacher-forced validation (model/objective.py `teacher_forced_metrics`); feeds the
        plateau reducer and early stopping."""
        self.model.eval()
        result = teacher_forced_metrics(self.model, batches, self.settings, self.device)
        result["lr_reduced"] = float(self.plateau.update(result["val_mel_loss"]))
        result["stop"] = float(self.early.update(result["val_mel_loss"]))
        return result

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, RNG states included."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "adaptive": self.adaptive.state_dict() if self.adaptive is not None else None,
            "ema": self.ema.state_dict(),
            "tracker": self.tracker.state_dict(),
            "plateau": self.plateau.state_dict(),
            "early": self.early.state_dict(),
            "step": self.step,
            "skipped": self.skipped,
            "nonfinite_streak": self.nonfinite_streak,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` (model, optimizer, scaler, monitors, step, RNG)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.adaptive is not None and state["adaptive"] is not None:
            self.adaptive.load_state_dict(state["adaptive"])
        self.ema.load_state_dict(state["ema"])
        self.tracker.load_state_dict(state["tracker"])
        self.plateau.load_state_dict(state["plateau"])
        self.early.load_state_dict(state["early"])
        self.step, self.skipped, self.nonfinite_streak = state["step"], state["skipped"], state["nonfinite_streak"]
        set_rng_state(state["rng"])


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python RNG states as tensors and plain data only, so a
    checkpoint holding them loads with torch's weights-only unpickler (numpy's own state is a
    tuple around an ndarray, which that unpickler refuses)."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        # int64: the uint32 key fits, and int64 tensors load everywhere.
        "numpy": {
            "kind": str(kind),
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),  # (version, tuple of ints, float or None): plain data
    }


def set_rng_state(rng: dict[str, Any]) -> None:
    """Restore the RNG states an `rng_state` call captured."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    n = rng["numpy"]
    key = n["key"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], key, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate(rng["python"])
