"""The loss terms of the mel decoder, and how they are weighted into one objective.

The decoder is either autoregressive (a causal transformer emitting `reduction` frames per step,
a stop logit per step, and cross-attention over the text) or parallel (the text expanded by
durations, decoded in one pass). Both are trained on:

- the **mel loss**: Huber (or plain L1) on normalized log-mels, before and after the postnet, against a
  target shrunk slightly toward the training-set mean (mel label smoothing);
- the **KL loss** of the style latent's posterior to a unit Gaussian, annealed in;
- the **duration loss** of the duration predictor, in log(d + 1) space;

and the autoregressive decoder also on:

- the **stop loss**: weighted, label-smoothed BCE on "this is the last step";
- the **attention loss**: cross-entropy of the cross-attention against the alignment that the
  precomputed durations give, so the model does not have to discover alignment by itself.

`combine` weights whichever terms apply into a total; `AdaptiveWeights` optionally rebalances
them, within fixed bounds, by their running magnitudes.

Conventions: mels are normalized log-mels [B, T, n_mels] (zero mean, unit variance per channel
over the training set); `frame_mask` [B, T] is True on real frames and, like `token_mask`
[B, N], is a prefix mask (padding only at the end); durations [B, N] are integer frames per
token, summing to the utterance's frame count. Every loss returns a 0-d float32 tensor and is
computed in float32 whatever the input dtype, so half-precision activations under autocast do
not lose the small differences the losses are made of.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from torch.nn import functional as F

from model.config import LossWeights
from model.layers import lengths_to_mask


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is True (same shape); 0 when nothing is masked in."""
    # where() rather than a product: a NaN or inf on a padded position must not leak into the
    # sum or, through the backward of a product, into the gradient.
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1)


# --- mel ---------------------------------------------------------------------------------------


def mel_label_smoothing(target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The normalized mel target shrunk toward the training-set mean: `(1 - smoothing) * target`.

    In normalized units the training-set mean is 0, so this moves every value a fraction
    `smoothing` of the way to the mean. It is the regression analogue of label smoothing for a
    classifier: a single recording's extremes (a spike of breath noise, a very deep spectral
    valley) are partly chance, and the model is not pushed to reproduce each of them exactly,
    which keeps it from over-fitting them and from growing over-confident outputs.
    """
    return (1.0 - smoothing) * target


def masked_huber(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, delta: float | None) -> torch.Tensor:
    """Huber loss averaged over the real frames and all channels (0-d tensor).

    Per element, with x = pred - target: 0.5 * x**2 where |x| <= delta, and
    delta * (|x| - 0.5 * delta) beyond (quadratic near the target, linear — so bounded
    gradient — far from it). `delta=None` is plain L1, |x| (the loss the recipe replaced).
    pred and target are [B, T, C]; mask [B, T] selects frames and is broadcast over the C
    channels; the mean is over (real frames x C) elements. Frames off the mask contribute
    neither to the value nor to the gradient.
    """
    if delta is None:
        per_element = (pred.float() - target.float()).abs()
    else:
        per_element = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
    return _masked_mean(per_element, mask[..., None].expand_as(per_element))


def mel_loss(
    pred_pre: torch.Tensor,
    pred_post: torch.Tensor,
    target: torch.Tensor,
    frame_mask: torch.Tensor,
    delta: float | None,
    smoothing: float,
) -> torch.Tensor:
    """masked_huber(pred_pre, s) + masked_huber(pred_post, s), s = mel_label_smoothing(target).

    Both the decoder's output before the postnet and the postnet's refinement are trained
    against the same smoothed target; the two means are summed, not averaged, so the term's
    scale is that of the documented recipe (mel weight 22 applies to the sum).
    """
    smoothed = mel_label_smoothing(target, smoothing)
    return masked_huber(pred_pre, smoothed, frame_mask, delta) + masked_huber(pred_post, smoothed, frame_mask, delta)


# --- stop --------------------------------------------------------------------------------------


def _step_counts(frame_mask: torch.Tensor, reduction: int) -> tuple[torch.Tensor, int]:
    """(real decoder steps per utterance [B], padded step count S = ceil(T / reduction))."""
    if reduction < 1:
        raise ValueError(f"reduction must be >= 1, got {reduction}")
    lengths = frame_mask.sum(1)
    return (lengths + reduction - 1) // reduction, -(-frame_mask.shape[1] // reduction)


def step_mask(frame_mask: torch.Tensor, reduction: int) -> torch.Tensor:
    """[B, S] bool, True on real decoder steps; S = ceil(T / reduction).

    Step s emits frames s*r .. s*r + r - 1 (r = reduction); it is real when it emits at least
    one real frame, so an utterance of L frames has ceil(L / r) real steps (the last one may
    be partly padding).
    """
    n_steps, s = _step_counts(frame_mask, reduction)
    return lengths_to_mask(n_steps.to(frame_mask.device), s)


def stop_targets(frame_mask: torch.Tensor, reduction: int) -> torch.Tensor:
    """[B, S] float: 1.0 on the last real decoder step of each utterance, 0.0 elsewhere.

    With L real frames and reduction r that is step ceil(L / r) - 1, the step that emits frame
    L - 1. An utterance with no frames has no stop step.
    """
    n_steps, s = _step_counts(frame_mask, reduction)
    steps = torch.arange(s, device=frame_mask.device)[None, :]
    return ((steps == n_steps[:, None] - 1) & (n_steps[:, None] > 0)).float()


def stop_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float,
    smoothing: float,
) -> torch.Tensor:
    """Weighted, label-smoothed binary cross-entropy of the stop logits, averaged over real steps.

    logits, targets (0/1, from `stop_targets`) and step_mask are [B, S]. With
    y = targets * (1 - smoothing) + smoothing / 2 (so 0 -> smoothing/2, 1 -> 1 - smoothing/2)
    and p = sigmoid(logit), each step's loss is

        w * -(y * log p + (1 - y) * log(1 - p)),   w = pos_weight on stop steps, 1 elsewhere,

    and the result is the sum over real steps divided by their count. There is one stop step
    per utterance among ceil(L / r), so without the weight the classifier is rewarded for
    never stopping.

    The weight is per step (by the unsmoothed target), not torch's `pos_weight`, which scales
    the y * log p term: with smoothed labels every step has y > 0, and that would also reweight
    the continue steps. Here exactly the rare stop steps count pos_weight times.
    """
    hard = targets.float()
    soft = hard * (1.0 - smoothing) + smoothing / 2.0
    per_step = F.binary_cross_entropy_with_logits(logits.float(), soft, reduction="none")
    weight = 1.0 + (pos_weight - 1.0) * hard
    return _masked_mean(weight * per_step, step_mask)


# --- attention ---------------------------------------------------------------------------------


def duration_path(durations: torch.Tensor, token_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
    """The hard alignment [B, T, N] (T = n_frames): 1.0 where frame t belongs to token n, else 0.

    Token n takes frames [sum(d[:n]), sum(d[:n+1])). Each real frame's row is one-hot; each
    column sums to the token's duration, so zero-duration tokens (word separators with no
    pause) get an empty column. Durations of tokens off `token_mask` are ignored, and frames
    past the total duration (padding) get empty rows.
    """
    d = torch.where(token_mask, durations.long(), torch.zeros_like(durations, dtype=torch.long))
    ends = d.cumsum(1)
    starts = ends - d
    t = torch.arange(n_frames, device=durations.device)[None, :, None]
    return ((t >= starts[:, None, :]) & (t < ends[:, None, :])).float()


def attention_targets(
    durations: torch.Tensor,
    token_mask: torch.Tensor,
    frame_mask: torch.Tensor,
    reduction: int,
    soften: float,
) -> torch.Tensor:
    """Per decoder step, the distribution over tokens that its cross-attention should have [B, S, N].

    Step s's row is the mean of the `duration_path` rows of the real frames it emits (frames
    s*r .. s*r + r - 1), so a step that straddles a token boundary splits its mass in
    proportion to the frames on each side; rows sum to 1 on real steps and are 0 on padding.

    soften > 0 blurs each row along the token axis: the mass on token m is spread over the
    real tokens n (token_mask) in proportion to exp(-(n - m)**2 / (2 * soften**2)), normalized
    over those real tokens, so rows still sum to 1 and no mass lands on padding. The distance
    counts token positions, so a zero-duration token between two others still counts as one
    position. A slightly soft target keeps the attention loss from demanding a one-hot
    attention (log of a near-zero weight) at every token boundary, where the durations
    themselves are uncertain by a frame or two.
    """
    b, t, n = frame_mask.shape[0], frame_mask.shape[1], durations.shape[1]
    path = duration_path(durations, token_mask, t) * frame_mask[..., None].float()
    s = -(-t // reduction)
    pad = s * reduction - t
    per_step = F.pad(path, (0, 0, 0, pad)).reshape(b, s, reduction, n).sum(2)
    real_frames = F.pad(frame_mask.float(), (0, pad)).reshape(b, s, reduction).sum(2)
    targets = per_step / real_frames.clamp(min=1.0)[..., None]
    if soften > 0:
        pos = torch.arange(n, device=durations.device, dtype=torch.float32)
        kernel = torch.exp(-((pos[:, None] - pos[None, :]) ** 2) / (2.0 * soften**2))  # [m, n]
        kernel = kernel[None] * token_mask[:, None, :].float()  # [B, m, n]
        kernel = kernel / kernel.sum(2, keepdim=True).clamp(min=1e-12)
        targets = targets @ kernel
    return targets


def attention_loss(
    attn: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    token_mask: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Cross-entropy of the cross-attention against the duration alignment, averaged over real steps.

    attn [B, S, N] are the decoder's cross-attention weights (averaged over heads and layers by
    the caller; each row sums to 1 over the real tokens); targets [B, S, N] from
    `attention_targets`. Per real step the loss is -sum over real tokens n of
    target[n] * log(attn[n] + eps); the result is the sum over real steps divided by their count.

    Since -sum t log a = H(t) + KL(t || a), the loss is minimal when attn == targets, where it
    equals the mean entropy of the target rows (0 for one-hot rows) — up to O(eps), which only
    keeps log finite where the attention is exactly 0. Gradients flow to attn only.
    """
    contrib = -targets.float() * torch.log(attn.float() + eps)
    contrib = torch.where(token_mask[:, None, :], contrib, torch.zeros_like(contrib))
    return _masked_mean(contrib.sum(2), step_mask)


@torch.no_grad()
def attention_alignment_error(attn: torch.Tensor, targets: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real steps of |argmax_n attn - argmax_n targets|, in tokens (0-d, no gradient).

    A diagnostic, not a loss: how far, on average, the token the decoder attends to most is
    from the one the durations say it is speaking.
    """
    distance = (attn.argmax(-1) - targets.argmax(-1)).abs().float()
    return _masked_mean(distance, step_mask)


# --- style latent and durations ----------------------------------------------------------------


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the latent dims (last axis),
    averaged over the batch (all other axes).

    Closed form per dim: 0.5 * (mu**2 + exp(logvar) - 1 - logvar), which is exactly 0 for
    mu = 0, logvar = 0 and positive otherwise.
    """
    mu, logvar = mu.float(), logvar.float()
    per_dim = 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar)
    return per_dim.sum(-1).mean()


def kl_weight_schedule(step: int, warmup_steps: int) -> float:
    """KL annealing factor: step / warmup_steps rising linearly from 0 to 1, then 1.

    Starting the KL term at 0 lets the reference encoder learn to carry style before the prior
    pulls its posterior in; at full weight from step 0 the cheapest way to lower the KL is to
    ignore the reference (posterior collapse).
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / warmup_steps))


def duration_loss(log_pred: torch.Tensor, durations: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of (log_pred - log(durations + 1))**2.

    The predictor works in log(d + 1): durations are long-tailed (a pause can take fifty times a
    short consonant's frames), and the log keeps the long ones from dominating while the +1
    keeps zero-duration tokens finite.
    """
    target = torch.log1p(durations.float())
    return _masked_mean((log_pred.float() - target) ** 2, token_mask)


# --- weighting ---------------------------------------------------------------------------------


@dataclass
class LossTerms:
    """One step's losses: unweighted (`raw`), weighted (`weighted`) and their sum (`total`).

    Both dicts have the same keys: only the terms that apply to the decoder.
    """

    raw: dict[str, torch.Tensor]
    weighted: dict[str, torch.Tensor]
    total: torch.Tensor


def combine(
    raw: dict[str, torch.Tensor | None],
    weights: LossWeights,
    factors: Mapping[str, float | torch.Tensor] | None = None,
    kl_scale: float = 1.0,
) -> LossTerms:
    """Weight the raw loss terms and sum them.

    weighted[k] = weight_k * factors.get(k, 1) * raw[k], times kl_scale as well for k == "kl"
    (the annealing factor from `kl_weight_schedule`); total = sum of weighted. A term whose raw
    value is None does not apply to this decoder (the parallel decoder has no stop and no
    attention term): it is absent from both dicts — not zero — so logs and adaptive weights
    never mistake "not computed" for "perfectly learned". Keys must be LossWeights fields.
    """
    names = {f.name for f in fields(weights)}
    factors = factors or {}
    kept: dict[str, torch.Tensor] = {}
    weighted: dict[str, torch.Tensor] = {}
    for name, value in raw.items():
        if name not in names:
            raise KeyError(f"unknown loss term {name!r}; expected one of {sorted(names)}")
        if value is None:
            continue
        scale = getattr(weights, name) * factors.get(name, 1.0)
        if name == "kl":
            scale *= kl_scale
        if isinstance(scale, torch.Tensor):
            # A device factor (AdaptiveWeights.device_factors) is float64: rounded to the
            # term's dtype first, as a Python float scale is, so the product is the same.
            scale = scale.to(value.dtype)
        kept[name] = value
        weighted[name] = scale * value
    if weighted:
        total = torch.stack([v.reshape(()) for v in weighted.values()]).sum()
    else:
        total = torch.zeros(())
    return LossTerms(raw=kept, weighted=weighted, total=total)


class AdaptiveWeights:
    """Optional, bounded rebalancing of the loss terms by their running magnitudes.

    For each term k it keeps an exponential moving average of |weighted term|:

        avg_k <- (1 - ema) * avg_k + ema * |x_k|     (ema = weight of the newest value;
                                                      the first value initializes avg_k)

    and returns per term the factor

        f_k = clamp((G / avg_k) ** strength, 1 / bound, bound),  G = geometric mean of all avg_j,

    over the terms seen so far (a term never seen gets 1.0 and does not enter G). A term that
    dominates the total is scaled down, one that has become negligible is scaled up, and
    strength (0 = off, 1 = full equalization in log space) sets how far toward equal
    magnitudes. Because of the clamp a factor never leaves [1/bound, bound]: no weight can be
    driven to zero or to infinity, so the documented weights keep their meaning up to that
    factor. The factors are logged by the trainer.

    Feed `update` the weighted terms *without* these factors (weight_k * raw_k, and the KL
    without its annealing scale): the factors are then a function of the terms alone; fed back
    the factored terms, the scheme would become an integrator that drifts to the bounds. A term
    absent from a step (or non-finite, e.g. an overflowed half-precision step) keeps its
    average unchanged.
    """

    def __init__(
        self, names: list[str], ema: float, bound: float, strength: float, device: torch.device | str = "cpu"
    ) -> None:
        if not 0.0 < ema <= 1.0:
            raise ValueError(f"ema must be in (0, 1], got {ema}")
        if bound < 1.0:
            raise ValueError(f"bound must be >= 1, got {bound}")
        if strength < 0.0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.names = list(names)
        self.ema = ema
        self.bound = bound
        self.strength = strength
        # The state lives on the training device as float64 tensors, so the trainer updates it
        # and reads the factors without a host sync; float64 so that the arithmetic is the
        # Python-float arithmetic it replaced (the products and sums round identically).
        self._avg = torch.zeros(len(self.names), dtype=torch.float64, device=device)
        self._seen = torch.zeros(len(self.names), dtype=torch.bool, device=device)
        # The order the terms were first offered in: G's log-sum adds them in that order, as
        # the sum over a dict in insertion order did.
        self._order: list[int] = []

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"unknown loss term {name!r}; expected one of {self.names}")
        return self.names.index(name)

    def update(self, weighted_terms: Mapping[str, float]) -> dict[str, float]:
        """Fold this step's weighted term magnitudes into the averages; return a factor per name."""
        values = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in weighted_terms.items()}
        self.update_on_device(values)
        return self.factors()

    def update_on_device(self, weighted_terms: Mapping[str, torch.Tensor], valid: torch.Tensor | None = None) -> None:
        """`update` on 0-dim tensors without reading them on the host: every term of a step
        where the boolean tensor `valid` is False keeps its average, as a non-finite one does."""
        index = [self._index(name) for name in weighted_terms]
        for i in index:
            if i not in self._order:
                self._order.append(i)
        nan = torch.full((), math.nan, dtype=torch.float64, device=self._avg.device)
        # One vector over all names: an absent term is NaN, so "absent" and "non-finite" take
        # the same path (the average stays), with no index tensor to copy to the device.
        given = dict(zip(index, weighted_terms.values()))
        x = torch.stack(
            [given[i].to(self._avg.device, torch.float64) if i in given else nan for i in range(len(self.names))]
        )
        x = x.abs()
        keep = ~torch.isfinite(x)
        if valid is not None:
            keep = keep | ~valid
        moved = (1.0 - self.ema) * self._avg + self.ema * x
        new = torch.where(self._seen, moved, x)
        self._avg = torch.where(keep, self._avg, new)
        self._seen = self._seen | ~keep

    def device_factors(self) -> dict[str, torch.Tensor]:
        """The current factor per name as 0-dim float64 tensors on the state's device (1.0
        for names not seen yet), without updating and without a host read."""
        # A floor on the averages: a term that is exactly 0 would make log and the ratio
        # infinite; the clamp to `bound` gives it the same factor anyway.
        logs = torch.log(torch.clamp_min(self._avg, 1e-30))
        zero = torch.zeros((), dtype=torch.float64, device=self._avg.device)
        log_sum = zero
        for i in self._order:  # in first-seen order: the same rounding as a sequential sum
            log_sum = log_sum + torch.where(self._seen[i], logs[i], zero)
        log_g = log_sum / self._seen.sum()
        log_bound = math.log(self.bound)
        # Clamped in log space, so huge ratios cannot overflow before the clamp.
        factors = torch.exp(torch.clamp(self.strength * (log_g - logs), -log_bound, log_bound))
        factors = torch.where(self._seen, factors, torch.ones_like(factors))
        return dict(zip(self.names, factors.unbind()))

    def factors(self) -> dict[str, float]:
        """The current factor per name (1.0 for names not seen yet), without updating."""
        return dict(zip(self.names, torch.stack(list(self.device_factors().values())).tolist()))

    @property
    def averages(self) -> dict[str, float]:
        """The running average per term seen so far (a host read)."""
        avg, seen = self._avg.tolist(), self._seen.tolist()
        return {self.names[i]: avg[i] for i in self._order if seen[i]}

    def state_dict(self) -> dict[str, object]:
        """The running averages (and the names they belong to), for a checkpoint."""
        return {"names": list(self.names), "averages": self.averages}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the averages from `state_dict()`; ema, bound and strength stay as constructed
        (they come from the configuration, which may have changed since the checkpoint)."""
        averages = dict(state["averages"])  # type: ignore[arg-type]
        unknown = set(averages) - set(self.names)
        if unknown:
            raise KeyError(f"checkpoint has averages for unknown terms {sorted(unknown)}")
        self._order = [self.names.index(k) for k in averages]
        avg = [float(averages.get(name, 0.0)) for name in self.names]
        self._avg = torch.tensor(avg, dtype=torch.float64, device=self._avg.device)
        self._seen = torch.tensor([name in averages for name in self.names], device=self._avg.device)
