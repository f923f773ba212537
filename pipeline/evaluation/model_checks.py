"""The model half of `hamgara doctor`: small experiments on the user's own data.

- `overfit_one_batch`: a fresh model trained on one batch must drive its mel loss down by a
  large factor within a bounded number of steps; if it cannot memorise eight utterances, the
  model, the masks or the data are wrong (the training recipe is not the question yet).
- `gradient_flow`: the gradient norm of each top-level module after one backward; a module
  with no gradient is dead (disconnected, or masked away), a huge or non-finite one explodes.
- `gradient_shares`: the share of the gradient that each weighted loss term contributes
  (each term's own gradient norm over the sum): a term that dominates or vanishes is a
  weighting problem — the mel_loss_weight question, answered on your data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.config import LossSettings, LossWeights
from model.losses import combine
from model.objective import raw_losses
from model.tts import HamgaraTTS, TTSBatch


@dataclass(frozen=True)
class OverfitResult:
    """Mel L1 (normalized units, after the postnet) before and after training on one batch."""

    initial: float
    final: float
    steps: int

    @property
    def ratio(self) -> float:
        return self.final / max(self.initial, 1e-12)


def _mel_l1(model: HamgaraTTS, batch: TTSBatch, frames: torch.Tensor | None = None) -> torch.Tensor:
    out = model(batch)
    mask = (batch.frame_mask if frames is None else frames)[..., None]
    return ((out.mel_post - batch.mels).abs() * mask).sum() / (mask.sum() * batch.mels.size(-1)).clamp_min(1)


def overfit_one_batch(
    model: HamgaraTTS,
    batch: TTSBatch,
    settings: LossSettings,
    weights: LossWeights,
    steps: int,
    lr: float,
    frames: torch.Tensor | None = None,
) -> OverfitResult:
    """Train `model` (in place) on `batch` alone for `steps` AdamW steps on the full objective;
    report the teacher-forced mel L1 before and after (measured in eval mode) over `frames`
    [B, T] — the utterances' true extents, known independently of the batch's own mask, so
    that a broken mask cannot hide itself — or the batch's mask when not given."""
    model.eval()
    with torch.no_grad():
        initial = float(_mel_l1(model, batch, frames))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        model.train()
        opt.zero_grad(set_to_none=True)
        terms = combine(raw_losses(model(batch), batch, settings), weights)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        final = float(_mel_l1(model, batch, frames))
    return OverfitResult(initial, final, steps)


def _grad_norms(model: HamgaraTTS) -> dict[str, float]:
    norms = {}
    for name, module in model.named_children():
        grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
        norms[name] = float(torch.stack(grads).norm()) if grads else 0.0
    return norms


def gradient_flow(model: HamgaraTTS, batch: TTSBatch, settings: LossSettings, weights: LossWeights) -> dict[str, float]:
    """Gradient norm per top-level module after one backward of the weighted total."""
    model.train()
    model.zero_grad(set_to_none=True)
    combine(raw_losses(model(batch), batch, settings), weights).total.backward()
    norms = _grad_norms(model)
    model.zero_grad(set_to_none=True)
    return norms


def gradient_shares(
    model: HamgaraTTS, batch: TTSBatch, settings: LossSettings, weights: LossWeights
) -> dict[str, float]:
    """Each weighted term's share of the summed per-term gradient norms (KL at full weight)."""
    model.train()
    torch.manual_seed(0)
    terms = combine(raw_losses(model(batch), batch, settings), weights)
    params = [p for p in model.parameters() if p.requires_grad]
    norms: dict[str, float] = {}
    for name, value in terms.weighted.items():
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
    total = sum(norms.values())
    return {k: v / total if total > 0 else 0.0 for k, v in norms.items()}
