"""Convergence as numbers, from the training history dvclive wrote.

`steps_to_target`: the first validation step whose smoothed val_mel_loss is at or below the
target (smoothing: an EMA over validations, so one lucky validation does not count);
`val_curve_area`: the area under the val_mel_loss curve over the steps it covers, divided by
that span — the curve's mean height, comparable between runs of different lengths, and lower
for a run that gets low early; `wall_seconds`: training time to the last validation and to
the target.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one dvclive metric .tsv; empty arrays when the file is absent."""
    if not path.is_file():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    name = [k for k in rows[0] if k not in ("step", "timestamp")][0]
    return np.array([int(r["step"]) for r in rows]), np.array([float(r[name]) for r in rows])


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """EMA with `weight` on the newest value (1 = no smoothing)."""
    out = np.empty_like(values, dtype=np.float64)
    acc = None
    for i, v in enumerate(values):
        acc = float(v) if acc is None else weight * float(v) + (1.0 - weight) * acc
        out[i] = acc
    return out


def steps_to_target(steps: np.ndarray, values: np.ndarray, target: float, weight: float) -> int | None:
    """First step whose smoothed value is <= target; None if never reached."""
    hit = np.flatnonzero(smooth(values, weight) <= target)
    return int(steps[hit[0]]) if len(hit) else None


def curve_area(steps: np.ndarray, values: np.ndarray) -> float | None:
    """Trapezoid area under the curve divided by its step span (its mean height); the single
    value when there is only one validation; None when there is none."""
    if len(values) == 0:
        return None
    if len(values) == 1 or steps[-1] == steps[0]:
        return float(values[0])
    area = float(np.sum((values[1:] + values[:-1]) / 2.0 * np.diff(steps)))
    return area / float(steps[-1] - steps[0])


def convergence(live_dir: Path, target: float, weight: float) -> dict[str, float | int | None]:
    """The convergence figures of the run logged in `live_dir` (None where not available)."""
    metrics = live_dir / "plots" / "metrics"
    steps, val = read_series(metrics / "val_mel_loss.tsv")
    wall_steps, wall = read_series(metrics / "val" / "wall_seconds.tsv")
    reached = steps_to_target(steps, val, target, weight) if len(val) else None
    seconds_to_target = None
    if reached is not None and len(wall):
        at = np.flatnonzero(wall_steps == reached)
        seconds_to_target = float(wall[at[0]]) if len(at) else None
    return {
        "validations": int(len(val)),
        "final_val_mel_loss": float(val[-1]) if len(val) else None,
        "best_val_mel_loss": float(val.min()) if len(val) else None,
        "steps_to_target": reached,
        "seconds_to_target": seconds_to_target,
        "val_curve_area": curve_area(steps, val),
        "wall_seconds": float(wall[-1]) if len(wall) else None,
    }
