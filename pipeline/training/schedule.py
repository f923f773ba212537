"""The learning-rate schedule of the training recipe, as one pure function of the step.

`cosine_restarts` (the documented recipe): linear warm-up from `min_lr` to the peak, then cosine
annealing with warm restarts (SGDR): cycles of `restart_period` steps, each `restart_mult` times
longer than the last, each falling from the peak to `min_lr`.

`noam` (the schedule the recipe replaced; kept so that benchmarks/convergence.py can measure the
difference): the same linear warm-up, then decay as 1/sqrt(step), peak * sqrt(warmup / (step + 1)).
`restart_period` and `restart_mult` are ignored.

A plateau on the validation loss multiplies the peak by `plateau_factor` (the trainer keeps that
scale); the floor stays `min_lr`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.config import LR_SCHEDULES, TrainConfig


@dataclass(frozen=True)
class ScheduleConfig:
    """params.yaml `train`: lr, warmup_steps, restart_period, restart_mult, min_lr, lr_schedule."""

    lr: float
    warmup_steps: int
    restart_period: int
    restart_mult: float
    min_lr: float
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule: {self.kind!r} is not one of {', '.join(LR_SCHEDULES)}")

    @classmethod
    def of(cls, cfg: TrainConfig) -> ScheduleConfig:
        """The schedule part of the train config."""
        return cls(cfg.lr, cfg.warmup_steps, cfg.restart_period, cfg.restart_mult, cfg.min_lr, cfg.lr_schedule)


def cycle_position(t: int, period: int, mult: float) -> tuple[int, int]:
    """(steps into the current cycle, length of the current cycle) for t steps after warm-up."""
    length = period
    while t >= length:
        t -= length
        length = max(1, int(round(length * mult)))
    return t, length


def lr_at(step: int, cfg: ScheduleConfig, scale: float = 1.0) -> float:
    """Learning rate at optimizer step `step` (0-based); `scale` is the plateau reduction so far."""
    peak = max(cfg.lr * scale, cfg.min_lr)
    if step < cfg.warmup_steps:
        return cfg.min_lr + (peak - cfg.min_lr) * (step + 1) / cfg.warmup_steps
    if cfg.kind == "noam":
        return max(cfg.min_lr, peak * math.sqrt(max(cfg.warmup_steps, 1) / (step + 1)))
    pos, length = cycle_position(step - cfg.warmup_steps, cfg.restart_period, cfg.restart_mult)
    return cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * pos / length))
