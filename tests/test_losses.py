"""The decoder's loss terms, their weighting, and the bounded adaptive rebalancing."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import LossWeights
from model.losses import (
    AdaptiveWeights,
    attention_alignment_error,
    attention_loss,
    attention_targets,
    combine,
    duration_loss,
    duration_path,
    kl_loss,
    kl_weight_schedule,
    masked_huber,
    mel_label_smoothing,
    mel_loss,
    step_mask,
    stop_loss,
    stop_targets,
)


def _prefix_mask(lengths: list[int], total: int) -> torch.Tensor:
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def _alignment_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two utterances: 5 tokens (one a zero-duration separator) over 9 frames, 3 tokens over 5."""
    durations = torch.tensor([[2, 3, 0, 1, 3], [1, 2, 2, 0, 0]])
    token_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    frame_mask = _prefix_mask([9, 5], 9)
    return durations, token_mask, frame_mask


# --- mel ---------------------------------------------------------------------------------------


def test_huber_is_quadratic_within_delta_and_linear_beyond() -> None:
    delta = 0.6
    target = torch.zeros(1, 4, 1)
    pred = torch.tensor([0.3, -0.5, 1.5, -2.0]).reshape(1, 4, 1)
    mask = torch.ones(1, 4, dtype=torch.bool)
    for i, x in enumerate([0.3, -0.5, 1.5, -2.0]):
        only = torch.zeros(1, 4, dtype=torch.bool)
        only[0, i] = True
        expected = 0.5 * x**2 if abs(x) <= delta else delta * (abs(x) - delta / 2)
        assert float(masked_huber(pred, target, only, delta)) == pytest.approx(expected, rel=1e-6)
    assert masked_huber(pred, target, mask, delta).dim() == 0


def test_no_delta_is_plain_l1_over_real_frames() -> None:
    pred = torch.tensor([0.3, -0.5, 1.5, -2.0]).reshape(1, 4, 1)
    mask = torch.tensor([[True, True, True, False]])
    assert float(masked_huber(pred, torch.zeros(1, 4, 1), mask, None)) == pytest.approx((0.3 + 0.5 + 1.5) / 3)


def test_huber_averages_over_real_frames_and_channels() -> None:
    pred = torch.full((1, 3, 2), 0.2)
    target = torch.zeros(1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    assert float(masked_huber(pred, target, mask, 1.0)) == pytest.approx(0.5 * 0.2**2, rel=1e-6)


def test_huber_ignores_masked_frames() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    mask = _prefix_mask([4, 6], 6)
    changed = pred.clone()
    changed[0, 4:] = 100.0
    changed[0, 5] = float("nan")
    assert torch.equal(masked_huber(pred, target, mask, 0.6), masked_huber(changed, target, mask, 0.6))


def test_huber_gives_no_gradient_to_masked_frames() -> None:
    torch.manual_seed(0)
    pred = torch.randn(1, 5, 2, requires_grad=True)
    masked_huber(pred, torch.randn(1, 5, 2), _prefix_mask([3], 5), 0.6).backward()
    assert torch.all(pred.grad[0, 3:] == 0) and torch.any(pred.grad[0, :3] != 0)


def test_mel_label_smoothing_shrinks_toward_zero_by_the_factor() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 5, 4)
    smoothed = mel_label_smoothing(target, 0.025)
    torch.testing.assert_close(smoothed, 0.975 * target)
    assert torch.all(smoothed.abs() <= target.abs())


def test_mel_loss_is_the_sum_of_pre_and_post_postnet_huber() -> None:
    torch.manual_seed(0)
    pre, post, target = torch.randn(2, 7, 4), torch.randn(2, 7, 4), torch.randn(2, 7, 4)
    mask = _prefix_mask([7, 4], 7)
    smoothed = 0.975 * target
    expected = masked_huber(pre, smoothed, mask, 0.6) + masked_huber(post, smoothed, mask, 0.6)
    torch.testing.assert_close(mel_loss(pre, post, target, mask, 0.6, 0.025), expected)


# --- stop --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", [1, 2, 3])
def test_stop_targets_mark_exactly_the_last_real_step(reduction: int) -> None:
    lengths = [1, 2, 3, 5, 6, 7]
    frame_mask = _prefix_mask(lengths, 7)
    targets = stop_targets(frame_mask, reduction)
    steps = step_mask(frame_mask, reduction)
    assert targets.shape == steps.shape == (len(lengths), math.ceil(7 / reduction))
    for i, length in enumerate(lengths):
        last = math.ceil(length / reduction) - 1
        assert targets[i].tolist() == [1.0 if s == last else 0.0 for s in range(targets.shape[1])]
        assert steps[i].tolist() == [s <= last for s in range(steps.shape[1])]
        # The stop step is the one that emits the utterance's last real frame.
        assert last * reduction <= length - 1 < (last + 1) * reduction


def test_stop_label_smoothing_targets_are_half_smoothing_from_0_and_1() -> None:
    smoothing = 0.06
    targets = torch.tensor([[0.0, 1.0]])
    mask = torch.tensor([[True, True]])
    logits = torch.tensor([[-0.7, 1.3]])
    loss = stop_loss(logits, targets, mask, pos_weight=1.0, smoothing=smoothing)
    soft = torch.tensor([[smoothing / 2, 1 - smoothing / 2]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, soft)
    torch.testing.assert_close(loss, expected)


def test_stop_loss_is_minimal_at_the_smoothed_targets() -> None:
    # BCE against y is minimal at sigmoid(logit) == y, so the optimum logits are logit(y).
    smoothing = 0.06
    targets, mask = torch.tensor([[0.0, 1.0]]), torch.tensor([[True, True]])
    y = torch.tensor([[smoothing / 2, 1 - smoothing / 2]])
    best = torch.log(y / (1 - y))
    at_best = stop_loss(best, targets, mask, 1.0, smoothing)
    for nudge in (-0.3, 0.3):
        assert stop_loss(best + nudge, targets, mask, 1.0, smoothing) > at_best


def test_stop_pos_weight_scales_only_the_positive_step() -> None:
    smoothing = 0.06
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    logits = torch.tensor([[-1.0, 0.5, 0.2]])
    negatives = torch.tensor([[True, True, False]])
    positive = torch.tensor([[False, False, True]])
    for mask, grows in ((negatives, False), (positive, True)):
        plain = stop_loss(logits, targets, mask, 1.0, smoothing)
        weighted = stop_loss(logits, targets, mask, 5.0, smoothing)
        if grows:
            torch.testing.assert_close(weighted, 5.0 * plain)
        else:
            torch.testing.assert_close(weighted, plain)


def test_stop_loss_ignores_padded_steps() -> None:
    targets = torch.tensor([[0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    logits = torch.tensor([[-2.0, 2.0, 0.0]])
    other = logits.clone()
    other[0, 2] = 50.0
    assert torch.equal(stop_loss(logits, targets, mask, 4.0, 0.06), stop_loss(other, targets, mask, 4.0, 0.06))


# --- attention ---------------------------------------------------------------------------------


def test_duration_path_rows_are_one_hot_and_columns_sum_to_durations() -> None:
    durations, token_mask, frame_mask = _alignment_case()
    path = duration_path(durations, token_mask, 9)
    assert path.shape == (2, 9, 5)
    row_sums = path.sum(2)
    assert torch.equal(row_sums, frame_mask.float())
    assert torch.all((path == 0) | (path == 1))
    assert torch.equal(path.sum(1), (durations * token_mask).float())
    assert torch.all(path[0, :, 2] == 0)  # the zero-duration separator takes no frame
    # Monotonic: the token index never decreases along the frames.
    assert torch.all(path[0].argmax(1).diff() >= 0)


@pytest.mark.parametrize("reduction", [1, 3])
def test_attention_target_rows_sum_to_one_on_real_steps(reduction: int) -> None:
    durations, token_mask, frame_mask = _alignment_case()
    targets = attention_targets(durations, token_mask, frame_mask, reduction, soften=0.0)
    steps = step_mask(frame_mask, reduction)
    assert targets.shape == (2, math.ceil(9 / reduction), 5)
    torch.testing.assert_close(targets.sum(2), steps.float())


def test_attention_targets_average_the_frames_of_a_step() -> None:
    durations = torch.tensor([[2, 3, 1]])
    token_mask = torch.ones(1, 3, dtype=torch.bool)
    frame_mask = torch.ones(1, 6, dtype=torch.bool)
    targets = attention_targets(durations, token_mask, frame_mask, 3, soften=0.0)
    # Frames 0-2 are tokens 0,0,1; frames 3-5 are tokens 1,1,2.
    torch.testing.assert_close(targets[0], torch.tensor([[2 / 3, 1 / 3, 0.0], [0.0, 2 / 3, 1 / 3]]))


def test_soften_keeps_row_sums_and_spreads_mass_over_real_tokens_only() -> None:
    durations, token_mask, frame_mask = _alignment_case()
    sharp = attention_targets(durations, token_mask, frame_mask, 1, soften=0.0)
    soft = attention_targets(durations, token_mask, frame_mask, 1, soften=1.0)
    torch.testing.assert_close(soft.sum(2), step_mask(frame_mask, 1).float())
    real = step_mask(frame_mask, 1)
    assert torch.all((soft > 0).sum(2)[real] > (sharp > 0).sum(2)[real])
    assert torch.all(soft.amax(2)[real] < sharp.amax(2)[real])
    assert torch.all(soft[1, :, 3:] == 0)  # padding tokens get nothing
    # The peak stays where the durations put it.
    assert torch.equal(soft.argmax(2)[real], sharp.argmax(2)[real])


def _attention_fixture() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    durations, token_mask, frame_mask = _alignment_case()
    targets = attention_targets(durations, token_mask, frame_mask, 1, soften=0.7)
    return targets, step_mask(frame_mask, 1), token_mask


def test_attention_loss_at_the_targets_equals_their_entropy() -> None:
    targets, steps, token_mask = _attention_fixture()
    loss = attention_loss(targets, targets, steps, token_mask)
    plogp = torch.where(targets > 0, targets * targets.log(), torch.zeros_like(targets))
    entropy = -plogp.sum(2)[steps].mean()
    torch.testing.assert_close(loss, entropy, atol=1e-4, rtol=0)


def test_attention_loss_is_larger_for_random_attention() -> None:
    targets, steps, token_mask = _attention_fixture()
    torch.manual_seed(0)
    at_targets = attention_loss(targets, targets, steps, token_mask)
    for _ in range(5):
        logits = torch.randn(targets.shape).masked_fill(~token_mask[:, None, :], -1e4)
        assert attention_loss(logits.softmax(-1), targets, steps, token_mask) > at_targets


def test_attention_loss_is_larger_for_shifted_attention() -> None:
    targets, steps, token_mask = _attention_fixture()
    shifted = targets.roll(1, dims=1)  # one step late
    assert attention_loss(shifted, targets, steps, token_mask) > attention_loss(targets, targets, steps, token_mask)


def test_alignment_error_is_zero_at_the_targets_and_positive_when_shifted() -> None:
    durations = torch.tensor([[2, 2, 2, 2]])
    token_mask = torch.ones(1, 4, dtype=torch.bool)
    frame_mask = torch.ones(1, 8, dtype=torch.bool)
    targets = attention_targets(durations, token_mask, frame_mask, 1, soften=0.0)
    steps = step_mask(frame_mask, 1)
    assert float(attention_alignment_error(targets, targets, steps)) == 0.0
    shifted = targets.roll(1, dims=2)  # attends one token ahead (the last wraps to the first)
    error = attention_alignment_error(shifted, targets, steps)
    assert float(error) == pytest.approx((6 * 1 + 2 * 3) / 8)


# --- KL and durations --------------------------------------------------------------------------


def test_kl_is_zero_for_the_prior() -> None:
    assert float(kl_loss(torch.zeros(3, 8), torch.zeros(3, 8))) == 0.0


def test_kl_is_positive_away_from_the_prior() -> None:
    torch.manual_seed(0)
    assert kl_loss(torch.randn(3, 8), torch.zeros(3, 8)) > 0
    assert kl_loss(torch.zeros(3, 8), torch.randn(3, 8)) > 0


def test_kl_matches_the_closed_form_on_a_hand_example() -> None:
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    var = torch.tensor([[1.0, 4.0], [0.25, 1.0]])
    # KL per dim = 0.5 * (mu^2 + var - 1 - ln var)
    first = 0.5 * (1.0 + 0.0) + 0.5 * (4.0 - 1.0 - math.log(4.0))
    second = 0.5 * (0.25 - 1.0 - math.log(0.25)) + 0.5 * 4.0
    assert float(kl_loss(mu, var.log())) == pytest.approx((first + second) / 2, rel=1e-6)


def test_kl_schedule_rises_linearly_from_zero_to_one() -> None:
    assert kl_weight_schedule(0, 1000) == 0.0
    assert kl_weight_schedule(500, 1000) == 0.5
    assert kl_weight_schedule(1000, 1000) == 1.0
    assert kl_weight_schedule(5000, 1000) == 1.0
    assert kl_weight_schedule(0, 0) == 1.0


def test_duration_loss_is_zero_for_perfect_log_predictions() -> None:
    durations, token_mask, _ = _alignment_case()
    perfect = torch.log(durations.float() + 1)
    perfect[1, 3:] = 99.0  # padding tokens do not count
    assert float(duration_loss(perfect, durations, token_mask)) == 0.0
    assert duration_loss(perfect + 0.1, durations, token_mask) > 0


# --- weighting ---------------------------------------------------------------------------------

WEIGHTS = LossWeights(mel=22.0, kl=1.8, stop=1.5, attention=0.3, duration=1.0)


def test_combine_leaves_absent_terms_out_and_sums_the_rest() -> None:
    raw = {
        "mel": torch.tensor(0.5),
        "kl": torch.tensor(2.0),
        "stop": None,
        "attention": None,
        "duration": torch.tensor(0.25),
    }
    terms = combine(raw, WEIGHTS, factors={"mel": 0.5}, kl_scale=0.1)
    assert set(terms.raw) == set(terms.weighted) == {"mel", "kl", "duration"}
    assert float(terms.weighted["mel"]) == pytest.approx(22.0 * 0.5 * 0.5)
    assert float(terms.weighted["kl"]) == pytest.approx(1.8 * 0.1 * 2.0)
    assert float(terms.weighted["duration"]) == pytest.approx(0.25)
    torch.testing.assert_close(terms.total, sum(terms.weighted.values()))


def test_combine_keeps_the_gradient_path() -> None:
    x = torch.tensor(1.0, requires_grad=True)
    combine({"mel": 2 * x, "kl": x}, WEIGHTS, kl_scale=0.5).total.backward()
    assert float(x.grad) == pytest.approx(22.0 * 2 + 1.8 * 0.5)


NAMES = ["mel", "kl", "stop", "attention"]


def test_adaptive_weights_scale_a_dominant_term_down_to_the_bound() -> None:
    adaptive = AdaptiveWeights(NAMES, ema=0.08, bound=2.0, strength=1.0)
    for _ in range(100):
        factors = adaptive.update({"mel": 100.0, "kl": 1.0, "stop": 1.0, "attention": 1.0})
    assert factors["mel"] == pytest.approx(1 / 2.0)


def test_adaptive_weights_scale_a_vanishing_term_up_to_the_bound() -> None:
    adaptive = AdaptiveWeights(NAMES, ema=0.08, bound=2.0, strength=1.0)
    factors = adaptive.update({"mel": 1.0, "kl": 1.0, "stop": 1.0, "attention": 1.0})
    assert all(f == pytest.approx(1.0) for f in factors.values())
    for _ in range(200):
        factors = adaptive.update({"mel": 1.0, "kl": 0.0, "stop": 1.0, "attention": 1.0})
    assert factors["kl"] == pytest.approx(2.0)


def test_adaptive_factors_always_stay_within_the_bounds() -> None:
    torch.manual_seed(0)
    adaptive = AdaptiveWeights(NAMES, ema=0.3, bound=3.0, strength=1.5)
    for _ in range(50):
        magnitudes = torch.exp(torch.randn(len(NAMES)) * 8).tolist()
        factors = adaptive.update(dict(zip(NAMES, magnitudes)))
        assert all(1 / 3.0 - 1e-12 <= f <= 3.0 + 1e-12 for f in factors.values())


def test_adaptive_ema_gives_the_new_value_weight_ema() -> None:
    adaptive = AdaptiveWeights(["mel"], ema=0.08, bound=2.0, strength=1.0)
    adaptive.update({"mel": 1.0})
    adaptive.update({"mel": 2.0})
    assert adaptive.averages["mel"] == pytest.approx(0.92 * 1.0 + 0.08 * 2.0)


def test_adaptive_absent_terms_keep_their_average() -> None:
    adaptive = AdaptiveWeights(NAMES, ema=0.5, bound=2.0, strength=1.0)
    adaptive.update({"mel": 1.0, "kl": 1.0, "stop": 3.0, "attention": 1.0})
    adaptive.update({"mel": 2.0, "kl": 1.0})
    adaptive.update({"mel": 2.0, "kl": float("nan")})
    assert adaptive.averages["stop"] == 3.0
    assert adaptive.averages["attention"] == 1.0
    assert adaptive.averages["kl"] == 1.0


def test_adaptive_state_dict_round_trips() -> None:
    adaptive = AdaptiveWeights(NAMES, ema=0.08, bound=2.0, strength=1.0)
    for i in range(10):
        adaptive.update({"mel": 5.0 + i, "kl": 0.1, "stop": 1.0})
    restored = AdaptiveWeights(NAMES, ema=0.08, bound=2.0, strength=1.0)
    restored.load_state_dict(adaptive.state_dict())
    assert restored.factors() == adaptive.factors()
    step = {"mel": 3.0, "kl": 0.2, "stop": 1.0, "attention": 0.5}
    assert restored.update(step) == adaptive.update(step)
