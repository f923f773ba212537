"""Dropout whose mask is cheap to draw on the CPU.

torch's CPU dropout draws its mask with `bernoulli_`: with the autoregressive demo's prenet,
residual, feed-forward and postnet dropout it was the largest operator of a training step
(docs/measurements.md, "Where a training step's time goes", has the figures). Comparing one 31-bit integer
draw per element with a threshold gives the same Bernoulli(1 - p) mask — p is rounded to a
multiple of 2^-31 — for a fraction of the cost. Elsewhere (CUDA's dropout is fused into one
kernel) torch's own dropout runs. Both draw from torch's generator for the device, so
`torch.manual_seed` makes a run repeatable.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# torch's `random_()` on int32 draws uniformly from [0, 2^31).
_INT32_DRAWS = 2**31


class _KeepAndScale(torch.autograd.Function):
    """x where `keep`, else 0, times `scale`; saves the boolean mask (1 byte per element).
    `torch.where` rather than `x * keep`: multiplying by a boolean tensor promotes it to float
    first, which cost several times the selection on the CPU (docs/measurements.md has the measurement)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element with probability `p` and scale the rest by 1 / (1 - p) while
    training; the identity otherwise. Same contract as `torch.nn.functional.dropout`."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 < p < 1.0:
        return F.dropout(x, p, training=True)
    threshold = round(p * _INT32_DRAWS)
    keep = torch.empty(x.shape, dtype=torch.int32).random_() >= threshold
    return _KeepAndScale.apply(x, keep, 1.0 / (1.0 - p))


class Dropout(nn.Module):
    """`dropout` as a module: a drop-in for `torch.nn.Dropout` (same `p`, no parameters, so
    checkpoints are unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
