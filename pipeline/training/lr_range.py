"""The LR range test (Leslie Smith, "Cyclical Learning Rates for Training Neural Networks",
2017) on the user's own features with the configured model: what `hamgara lr-find` runs.

The model and its Trainer are built exactly as a training run builds them
(`pipeline/training/loop.py`'s `build_trainer` and `training_data`: same seed, same initial
weights, same batches, accumulation, clipping and loss). Then `steps` optimizer steps are taken
with the LR set directly at each step (`Trainer.lr_override`: no warm-up, no schedule, no
plateau reduction, no validation, no early stopping), swept exponentially from `start_lr` to
`end_lr`, and the training loss of each step is recorded. Step i's loss is computed on the
weights the earlier, smaller LRs made, and its update uses lrs[i] (fastai's convention).

The loss is smoothed by an exponential moving average with bias correction (the average of
the first steps is not pulled toward 0). The sweep ends early, cleanly, when the smoothed loss
exceeds `divergence_factor` x its minimum so far or a loss is not finite: a diverging run is the
expected end of a range test, never an error.

The suggestion (`suggest_lr`) is a pure function of the LRs and the smoothed losses, with two
rules, both reported:
- `min_over`: the LR at the smoothed loss's minimum, divided by `min_divisor` — below the point
  where the loss stops improving; on a short, noisy sweep it moves less than a slope does. The
  divisor is calibrated (params.yaml says how): the classic 10 was measured 2-3x too low on the
  demo, where the first steps' fall (learning, not the LR) also makes `steepest` point at the start;
- `steepest`: the LR where the smoothed loss falls fastest per unit of log LR (the most negative
  d loss / d log lr), among the LRs up to the smoothed minimum (beyond it the run diverges).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.tts import TTSBatch
from pipeline.config import LrFindConfig, train_config
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, accumulation_groups
from pipeline.training.distributed import DistContext
from pipeline.training.loop import build_trainer, training_data
from pipeline.training.step import TrainingAborted

RULE_TEXT = {
    "min_over": "the LR at the minimum of the smoothed loss, divided by lr_find.min_divisor",
    "steepest": "the LR of steepest descent of the smoothed loss (most negative d loss / d log LR) "
    "before its minimum, where the sweep starts to diverge",
}


def sweep_lrs(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """`steps` LRs from `start_lr` to `end_lr`, each the previous times a constant factor."""
    return np.geomspace(start_lr, end_lr, steps)


class BiasCorrectedEMA:
    """An exponential moving average whose early values are divided by 1 - beta^n, so that the
    first steps are not biased toward the zero the average starts from."""

    def __init__(self, weight: float) -> None:
        self.beta, self.avg, self.n = 1.0 - weight, 0.0, 0

    def update(self, value: float) -> float:
        """Add `value` (the newest gets `weight`); return the corrected average."""
        self.n += 1
        self.avg = self.beta * self.avg + (1.0 - self.beta) * value
        return self.avg / (1.0 - self.beta**self.n)


def smooth(losses: list[float], weight: float) -> list[float]:
    """The bias-corrected EMA of `losses`, one value per loss."""
    ema = BiasCorrectedEMA(weight)
    return [ema.update(x) for x in losses]


def diverged(smoothed: list[float], factor: float) -> bool:
    """The smoothed loss is not finite, or above `factor` x its minimum so far."""
    last, best = smoothed[-1], min(smoothed)
    if not math.isfinite(last):
        return True
    # The training loss is a sum of non-negative terms; the abs() keeps the rule sane anyway.
    return last - best > (factor - 1.0) * abs(best)


def lr_candidates(
    lrs: list[float] | np.ndarray, smoothed: list[float] | np.ndarray, divisor: float
) -> dict[str, float | None]:
    """Both rules' LRs and the minimum's LR; `steepest` is None when the loss never fell (its
    minimum is the first point, so there is no descent to measure)."""
    lr, s = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if len(lr) == 0 or len(lr) != len(s):
        raise ValueError(f"lr_candidates: need as many LRs as losses, got {len(lr)} and {len(s)}")
    best = int(np.nanargmin(s))
    steepest = None
    if best >= 1:
        # Slopes over the descending part only: past the minimum the run diverges.
        slopes = np.gradient(s[: best + 1], np.log(lr[: best + 1]))
        steepest = float(lr[int(np.argmin(slopes))])
    return {"min_loss_lr": float(lr[best]), "min_over": float(lr[best]) / divisor, "steepest": steepest}


def suggest_lr(
    lrs: list[float] | np.ndarray, smoothed_losses: list[float] | np.ndarray, rule: str, divisor: float
) -> tuple[float, str]:
    """The suggested train.lr and the rule that chose it, in words. `steepest` falls back to
    `min_over` (and says so) when the loss never fell."""
    if rule not in RULE_TEXT:
        raise ValueError(f"suggest_lr: unknown rule {rule!r}; one of {', '.join(RULE_TEXT)}")
    found = lr_candidates(lrs, smoothed_losses, divisor)
    said = RULE_TEXT["min_over"].replace("lr_find.min_divisor", f"{divisor:g}")
    if rule == "steepest" and found["steepest"] is not None:
        return found["steepest"], f"steepest: {RULE_TEXT['steepest']}"
    lr = found["min_over"]
    assert lr is not None
    if rule == "steepest":
        return lr, f"min_over ({said}): the loss never fell, so steepest had no descent"
    return lr, f"min_over: {said}"


def _step_groups(
    train_set: FeatureDataset, sampler: BucketBatchSampler, loader_kw: dict[str, Any], accumulation: int
) -> Iterator[list[TTSBatch]]:
    """Groups of `accumulation` micro-batches in training's order, epoch after epoch (a short
    sweep on a small corpus runs over several epochs)."""
    if len(sampler) < accumulation:
        raise ValueError(
            f"the training split makes {len(sampler)} batch(es) per epoch, fewer than "
            f"train.grad_accumulation ({accumulation}): lower it or train.batch_size"
        )
    epoch = 0
    while True:
        loader = DataLoader(train_set, batch_sampler=sampler.batches(epoch), **loader_kw)
        for group, _ in accumulation_groups(loader, accumulation):
            yield group
        epoch += 1


def run_sweep(params: dict[str, Any], store_path: Path, cfg: LrFindConfig, progress: bool = True) -> dict[str, Any]:
    """The range test: returns the recorded curve, why it stopped, and the run's settings."""
    tcfg = train_config(params)
    ctx = DistContext()  # one process: the test is minutes, not a training run
    built = build_trainer(params, store_path, ctx)
    groups = _step_groups(*training_data(store_path, tcfg, built.device, ctx), tcfg.grad_accumulation)
    lrs, losses, smoothed = [], [], []
    ema = BiasCorrectedEMA(cfg.smoothing)
    stopped = {"reason": "end_lr reached"}
    started = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="lr-find", unit="step", disable=not progress)
    try:
        for lr, group in zip(sweep_lrs(cfg.start_lr, cfg.end_lr, cfg.steps), groups):
            loss = _one_step(built.trainer, float(lr), group)
            if not math.isfinite(loss):
                stopped = {"reason": "non-finite loss", "step": len(lrs), "lr": float(lr)}
                break
            lrs.append(float(lr))
            losses.append(loss)
            smoothed.append(ema.update(loss))
            bar.update(1)
            bar.set_postfix(loss=f"{smoothed[-1]:.3f}", lr=f"{lr:.1e}")
            if diverged(smoothed, cfg.divergence_factor):
                stopped = {
                    "reason": f"smoothed loss above {cfg.divergence_factor:g} x its minimum",
                    "step": len(lrs) - 1,
                    "lr": float(lr),
                }
                break
    finally:
        bar.close()
        groups.close()  # ends the DataLoader's worker processes now, not at garbage collection
    settings = {
        "decoder": built.mcfg.decoder,
        "device": str(built.device),
        "batch_size": tcfg.batch_size,
        "grad_accumulation": tcfg.grad_accumulation,
    }
    seconds = round(time.perf_counter() - started, 1)
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed, "stopped": stopped, "seconds": seconds, **settings}


def _one_step(trainer: Any, lr: float, group: list[TTSBatch]) -> float:
    """One optimizer step at `lr`; its training loss, or nan when the step was not finite
    (the Trainer skips such a step; with train.max_nonfinite 1 it raises, which ends the
    sweep the same way)."""
    trainer.lr_override = lr
    try:
        log = trainer.train_step(group)
    except TrainingAborted:
        return float("nan")
    return float(log.get("loss", float("nan")))


def lr_find(params: dict[str, Any], store_path: Path, cfg: LrFindConfig, progress: bool = True) -> dict[str, Any]:
    """Run the sweep and return the report: the curve, both candidates, the suggestion under
    `cfg.rule`, and the configured train.lr against it."""
    sweep = run_sweep(params, store_path, cfg, progress)
    if not sweep["lrs"]:
        raise TrainingAborted(
            f"lr-find: the very first step's loss was not finite (LR {cfg.start_lr:g}): lower "
            "lr_find.start_lr, or check the data (hamgara doctor)"
        )
    candidates = lr_candidates(sweep["lrs"], sweep["smoothed"], cfg.min_divisor)
    # A curve that only rises started past its useful range: its suggestion is a guess.
    note = (
        "" if candidates["steepest"] is not None else "the smoothed loss never fell: lower lr_find.start_lr and rerun"
    )
    exact, rule_text = suggest_lr(sweep["lrs"], sweep["smoothed"], cfg.rule, cfg.min_divisor)
    suggested = float(f"{exact:.1e}")  # two significant digits: the value the override writes
    configured = train_config(params).lr
    return {
        "suggested_lr": suggested,
        "rule": cfg.rule,
        "rule_text": rule_text,
        "candidates": candidates,
        "configured_lr": configured,
        "configured_over_suggested": configured / suggested,
        "override": f"dvc exp run -S train.lr={suggested:.1e}",
        "note": note,
        "settings": {
            "start_lr": cfg.start_lr,
            "end_lr": cfg.end_lr,
            "steps": cfg.steps,
            "smoothing": cfg.smoothing,
            "divergence_factor": cfg.divergence_factor,
        },
        **sweep,
        "steps_run": len(sweep["lrs"]),
    }
