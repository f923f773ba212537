"""Monitoring convergence: the loss EMA, the slope over a window, plateau LR reduction and
early stopping. Plain state machines with state_dict/load_state_dict, so a resumed run
continues exactly where it stopped."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np


class LossEMA:
    """Exponential moving average: value <- (1 - alpha) * value + alpha * x; the first x sets it."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value: float | None = None

    def update(self, x: float) -> float:
        self.value = x if self.value is None else (1 - self.alpha) * self.value + self.alpha * x
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]


class ConvergenceTracker:
    """Least-squares slope of the smoothed loss over the last `window` steps.

    `plateau` is True once the window is full and the fitted fall over the whole window is
    less than `min_delta` (in loss units): the loss has stopped coming down."""

    def __init__(self, window: int, min_delta: float) -> None:
        self.window = window
        self.min_delta = min_delta
        self.values: deque[float] = deque(maxlen=window)

    def update(self, smoothed: float) -> None:
        self.values.append(smoothed)

    def slope(self) -> float | None:
        """Loss change per step over the window (None until there are two points)."""
        if len(self.values) < 2:
            return None
        y = np.asarray(self.values)
        x = np.arange(len(y), dtype=np.float64)
        return float(np.polyfit(x, y, 1)[0])

    @property
    def plateau(self) -> bool:
        s = self.slope()
        return len(self.values) == self.window and s is not None and -s * (self.window - 1) < self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = deque(state["values"], maxlen=self.window)


class PlateauReducer:
    """Multiplies the LR scale by `factor` after `patience` validations without an improvement
    of more than `min_delta` over the best so far (then waits `patience` again)."""

    def __init__(self, factor: float, patience: int, min_delta: float) -> None:
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.best = float("inf")
        self.waited = 0
        self.scale = 1.0
        self.reductions = 0

    def update(self, val_loss: float) -> bool:
        """Record a validation loss; True when it just reduced the LR."""
        if val_loss < self.best - self.min_delta:
            self.best, self.waited = val_loss, 0
            return False
        self.waited += 1
        if self.waited >= self.patience:
            self.scale *= self.factor
            self.reductions += 1
            self.waited = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited, "scale": self.scale, "reductions": self.reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.waited = state["best"], state["waited"]
        self.scale, self.reductions = state["scale"], state["reductions"]


class EarlyStopping:
    """Stop after `patience` validations in a row without beating the best by `min_delta`."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best = float("inf")
        self.bad = 0

    def update(self, val_loss: float) -> bool:
        """Record a validation loss; True when training should stop."""
        if val_loss < self.best - self.min_delta:
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
        return self.bad >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], state["bad"]
