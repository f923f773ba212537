"""The aligner's parts: the prior, the forward-sum objective, training, durations."""

from __future__ import annotations

import numpy as np
import torch

from model.aligner import Aligner, beta_binomial_log_prior, forward_sum_loss
from pipeline.features.aligner_training import flag_outliers


def test_prior_rows_are_distributions_peaking_near_the_diagonal() -> None:
    log_prior = beta_binomial_log_prior(n_tokens=10, n_frames=50, scaling=1.0)
    p = np.exp(log_prior)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    peaks = p.argmax(1)
    assert peaks[0] == 0 and peaks[-1] == 9
    assert np.all(np.diff(peaks) >= 0)


def _loss_of(log_attn: torch.Tensor) -> float:
    b, t, n = log_attn.shape
    mask = torch.ones(b, n, dtype=torch.bool)
    targets = torch.arange(1, n + 1)[None, :].expand(b, n)
    lens = torch.full((b,), n)
    return float(forward_sum_loss(log_attn, mask, targets, lens, torch.full((b,), t), -1.0)[0])


def test_forward_sum_loss_prefers_a_monotonic_alignment_to_a_reversed_one() -> None:
    frames, tokens = 12, 4
    diagonal = torch.full((1, frames, tokens), -8.0)
    reversed_ = torch.full((1, frames, tokens), -8.0)
    for t in range(frames):
        diagonal[0, t, t * tokens // frames] = 0.0
        reversed_[0, t, tokens - 1 - t * tokens // frames] = 0.0
    assert _loss_of(diagonal) < 0.5 * _loss_of(reversed_)


def test_forward_sum_loss_ignores_columns_off_the_mask() -> None:
    frames = 9
    log_attn = torch.log_softmax(torch.randn(1, frames, 4), -1)
    mask = torch.tensor([[True, False, True, True]])
    targets = torch.tensor([[1, 3, 4]])
    a = forward_sum_loss(log_attn, mask, targets, torch.tensor([3]), torch.tensor([frames]), -1.0)
    changed = log_attn.clone()
    changed[0, :, 1] = 5.0  # the masked column's values must not matter
    b = forward_sum_loss(changed, mask, targets, torch.tensor([3]), torch.tensor([frames]), -1.0)
    assert torch.allclose(a, b)


def test_aligner_soft_alignment_is_a_distribution_over_unmasked_tokens() -> None:
    torch.manual_seed(0)
    model = Aligner(n_symbols=12, n_mels=8, hidden=16, attn_dim=8, temperature=0.1)
    tokens = torch.randint(1, 12, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    log_attn = model(tokens, torch.randn(2, 20, 8), mask, torch.zeros(2, 20, 6))
    p = log_attn.exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 20), atol=1e-5, rtol=0)
    assert p[1, :, 4:].max() < 1e-6


def test_outliers_are_scores_far_above_the_median() -> None:
    scores = np.array([0.20, 0.21, 0.19, 0.22, 0.20, 0.18, 0.21, 0.95])
    flagged, threshold = flag_outliers(scores, k=6.0)
    assert flagged.tolist() == [False] * 7 + [True]
    assert 0.22 < threshold < 0.95
