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

Host syncs: `step_on_device` never reads a device value on the host (on a GPU each read would
stall the launch queue). The losses, grad norm and skip counts stay on the device, the skip
happens inside the fused AdamW kernel (`found_inf`), the adaptive weights are device tensors.
`read_logs` reads every pending step in one transfer and replays them into the loss EMA and
convergence tracker; the train loop calls it every `train.log_every` steps (docs/training.md,
"Host syncs per step"). `train_step` is both at once, for the callers that want each row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from collections.abc import Mapping
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


@dataclasses.dataclass(frozen=True)
class _PendingStep:
    """A step taken and not read yet: what the host knew (step, LR, KL scale, the loss keys)
    and one float64 device vector of what it did not: [finite, grad_norm, skipped, streak,
    total, raw terms..., weighted terms..., adaptive factors...]."""

    step: int
    lr: float
    kl_scale: float
    raw_keys: list[str]
    weighted_keys: list[str]
    factor_keys: list[str]
    figures: torch.Tensor

    @property
    def width(self) -> int:
        return 5 + len(self.raw_keys) + len(self.weighted_keys) + len(self.factor_keys)


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
            AdaptiveWeights(list(LOSS_TERMS), cfg.loss_ema, cfg.adaptive_bound, cfg.adaptive_strength, device)
            if cfg.adaptive_loss_weights
            else None
        )
        self.ema = LossEMA(cfg.loss_ema)
        self.tracker = ConvergenceTracker(cfg.convergence_window, cfg.early_stop_min_delta)
        self.plateau = PlateauReducer(cfg.plateau_factor, cfg.plateau_patience, cfg.early_stop_min_delta)
        self.early = EarlyStopping(cfg.early_stop_patience, cfg.early_stop_min_delta)
        self.step = 0
        # The skip count and the streak of skips in a row live on the device (the step adds to
        # them without a host read); `skipped` and `nonfinite_streak` are their values as of
        # the last read.
        self._skipped = torch.zeros((), dtype=torch.int64, device=device)
        self._streak = torch.zeros((), dtype=torch.int64, device=device)
        self.skipped = 0
        self.nonfinite_streak = 0
        # Steps taken and not yet read, and rows read (by state_dict) but not yet returned.
        self._pending: list[_PendingStep] = []
        self._unreturned: list[dict[str, float]] = []
        # The LR range test (pipeline/training/lr_range.py) sets each step's LR itself: when
        # not None this replaces the schedule and the plateau scale. Not training state, so
        # it is not in state_dict.
        self.lr_override: float | None = None

    def _forward(
        self, batch: TTSBatch, factors: Mapping[str, float | torch.Tensor] | None, kl_scale: float
    ) -> tuple[Any, dict]:
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
        """One optimizer step over the micro-batches, read at once; returns what to log.

        `step_on_device` then `read_logs`: the host waits for the step. Steps taken with
        `step_on_device` and not read yet are read too (and folded into the EMA, tracker and
        skip counts); only this step's row is returned."""
        self.step_on_device(micro_batches)
        return self.read_logs()[-1]

    def step_on_device(self, micro_batches: list[TTSBatch]) -> None:
        """One optimizer step over the micro-batches with no host read of a device value.

        The losses, grad norm, skip flag and skip counts stay on the device until `read_logs`;
        a non-finite loss or gradient skips the update inside the fused optimizer (its
        `found_inf`), so the host never has to know in time."""
        lr, kl_scale, factors = self._begin_step()
        loss_ok, total, raw_sum, weighted_sum = self._accumulate(micro_batches, factors, kl_scale)
        grad_norm = self._clip_gradients()
        finite = loss_ok & torch.isfinite(grad_norm)
        self._update_or_skip(finite)
        self.scaler.update()
        if self.adaptive is not None:
            # The factors' input excludes the factors and the KL annealing, or they would
            # feed back into themselves.
            base = {k: getattr(self.weights, k) * v for k, v in raw_sum.items()}
            self.adaptive.update_on_device(base, valid=finite)
        nan = torch.full((), math.nan, dtype=torch.float64, device=self.device)
        figures = [
            finite.to(torch.float64),
            torch.where(loss_ok, grad_norm.to(torch.float64), nan),
            self._skipped.to(torch.float64),
            self._streak.to(torch.float64),
            total,
            *raw_sum.values(),
            *weighted_sum.values(),
            *(factors.values() if factors is not None else ()),
        ]
        self._pending.append(
            _PendingStep(
                step=self.step,
                lr=lr,
                kl_scale=kl_scale,
                raw_keys=list(raw_sum),
                weighted_keys=list(weighted_sum),
                factor_keys=list(factors) if factors is not None else [],
                figures=torch.stack(figures),
            )
        )
        self.step += 1

    def read_logs(self) -> list[dict[str, float]]:
        """Every step's figures since the last read, in one device-to-host transfer, as the
        rows `train_step` returns; replays each step's loss into the EMA and convergence
        tracker in order and updates `skipped` and `nonfinite_streak`.

        Raises TrainingAborted (naming the step) when `max_nonfinite` steps in a row were
        skipped: with reads every `log_every` steps, up to that many steps after it happened."""
        rows, self._unreturned = self._unreturned + self._drain(), []
        return rows

    def _drain(self) -> list[dict[str, float]]:
        """Read and replay the pending steps (see `read_logs`)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        # The one host read: every pending step's figures together.
        values = torch.cat([p.figures for p in pending]).tolist()
        rows, at = [], 0
        for p in pending:
            n = p.width
            rows.append(self._row(p, values[at : at + n]))
            at += n
        return rows

    def _row(self, p: _PendingStep, v: list[float]) -> dict[str, float]:
        """One step's log row from its read figures; the host-side monitors advance here."""
        finite, grad_norm, skipped, streak, total = v[:5]
        self.skipped, self.nonfinite_streak = int(skipped), int(streak)
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            raise TrainingAborted(
                f"{self.nonfinite_streak} non-finite steps in a row at step {p.step}: lower train.lr, "
                "check the data (hamgara doctor) or turn off train.mixed_precision"
            )
        log: dict[str, float] = {"lr": p.lr, "grad_norm": grad_norm, "kl_scale": p.kl_scale}
        log["skipped_steps"] = self.skipped
        if not finite:
            return log
        nr, nw = len(p.raw_keys), len(p.weighted_keys)
        raw = dict(zip(p.raw_keys, v[5 : 5 + nr]))
        weighted = dict(zip(p.weighted_keys, v[5 + nr : 5 + nr + nw]))
        factors = dict(zip(p.factor_keys, v[5 + nr + nw :]))
        smoothed = self.ema.update(total)
        self.tracker.update(smoothed)
        slope = self.tracker.slope()
        log.update({"loss": total, "loss_ema": smoothed, "plateau": float(self.tracker.plateau)})
        if slope is not None:
            log["loss_slope"] = slope
        log.update({f"raw/{k}": raw[k] for k in sorted(raw)})
        log.update({f"weighted/{k}": weighted[k] for k in sorted(weighted)})
        log.update({f"adaptive/{k}": x for k, x in factors.items()})
        return log

    def _begin_step(self) -> tuple[float, float, dict[str, torch.Tensor] | None]:
        """Set this step's LR; return it with the KL scale and the adaptive factors (device
        tensors)."""
        self.model.train()
        lr = self.lr_override
        if lr is None:
            lr = lr_at(self.step, ScheduleConfig.of(self.cfg), self.plateau.scale)
        for group in self.opt.param_groups:
            group["lr"] = lr
        kl_scale = kl_weight_schedule(self.step, self.cfg.kl_warmup_steps)
        factors = self.adaptive.device_factors() if self.adaptive is not None else None
        self.opt.zero_grad(set_to_none=True)
        return lr, kl_scale, factors

    def _accumulate(
        self, micro_batches: list[TTSBatch], factors: dict[str, torch.Tensor] | None, kl_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Forward/backward over the micro-batches, each loss divided by their count; returns
        whether every loss was finite on every rank (a bool tensor), and the total, raw and
        weighted terms as float64 tensors (means over ranks)."""
        raw_sum: dict[str, torch.Tensor] = {}
        weighted_sum: dict[str, torch.Tensor] = {}
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        bad = torch.zeros((), dtype=torch.float64, device=self.device)
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
                # The backward runs even on a non-finite loss (its gradient is then non-finite
                # and the step is skipped on the device): every rank reaches the gradient
                # all-reduce, and nothing on the host has to know.
                bad = torch.maximum(bad, (~torch.isfinite(loss)).to(torch.float64))
                self.scaler.scale(loss).backward()
            # float64 sums of the float32 values, term by term: the arithmetic of the Python
            # floats (`loss.item()` sums) they replace.
            total = total + loss.detach().to(torch.float64)
            for k, v in terms.raw.items():
                x = v.detach().to(torch.float64) / n
                raw_sum[k] = raw_sum[k] + x if k in raw_sum else x
            for k, v in terms.weighted.items():
                x = v.detach().to(torch.float64) / n
                weighted_sum[k] = weighted_sum[k] + x if k in weighted_sum else x
        raw_sum = {k: raw_sum[k] for k in sorted(raw_sum)}
        weighted_sum = {k: weighted_sum[k] for k in sorted(weighted_sum)}
        if self.dist.active:
            # One collective per step, queued on the device: the ranks agree on skipping (a
            # non-finite loss anywhere skips everywhere) and every rank feeds the adaptive
            # weights, and logs, the mean over ranks.
            packed = self.dist.sum_on_device(torch.stack([bad, total, *raw_sum.values(), *weighted_sum.values()]))
            bad, total = packed[0], packed[1] / self.dist.world_size
            means = (packed[2:] / self.dist.world_size).unbind()
            nr = len(raw_sum)
            raw_sum = dict(zip(raw_sum, means[:nr]))
            weighted_sum = dict(zip(weighted_sum, means[nr:]))
        return bad == 0, total, raw_sum, weighted_sum

    def _clip_gradients(self) -> torch.Tensor:
        """Unscale and clip the gradients; the global norm before clipping (a device tensor)."""
        self.scaler.unscale_(self.opt)
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)

    def _update_or_skip(self, finite: torch.Tensor) -> None:
        """Apply the update where `finite` (a bool tensor), else leave weights, moments and
        step counts as they are; count the skip and the streak on the device."""
        found_inf = (~finite).to(torch.float32)
        if getattr(self.opt, "_step_supports_amp_scaling", False):
            # The fused AdamW kernel returns without touching anything when found_inf is 1
            # and takes the step counters back (torch/optim/adam.py `_fused_adam`), as under
            # GradScaler. Under fp16 the scaler has unscaled already (`_clip_gradients`), and
            # its own inf check (which `scaler.update` backs off on) is part of this flag: an
            # inf or NaN gradient makes the norm non-finite.
            self.opt.found_inf = found_inf  # type: ignore[attr-defined]
            try:
                self.opt.step()
            finally:
                del self.opt.found_inf  # type: ignore[attr-defined]
        elif bool(finite):  # an optimizer without found_inf (no fused kernel): one host read
            self.opt.step()
        bad = found_inf.to(torch.int64)
        self._skipped = self._skipped + bad
        self._streak = (self._streak + 1) * bad

    def validate(self, batches: list[TTSBatch]) -> dict[str, float]:
        """Teacher-forced validation (model/objective.py `teacher_forced_metrics`); feeds the
        plateau reducer and early stopping."""
        self.model.eval()
        result = teacher_forced_metrics(self.model, batches, self.settings, self.device)
        result["lr_reduced"] = float(self.plateau.update(result["val_mel_loss"]))
        result["stop"] = float(self.early.update(result["val_mel_loss"]))
        return result

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, RNG states included. Pending steps are read first
        (their rows wait for the next `read_logs`), so the EMA, tracker and counts are current."""
        self._unreturned += self._drain()
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
        self._skipped = torch.tensor(self.skipped, dtype=torch.int64, device=self.device)
        self._streak = torch.tensor(self.nonfinite_streak, dtype=torch.int64, device=self.device)
        self._pending, self._unreturned = [], []
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
