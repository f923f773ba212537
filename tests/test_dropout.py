"""model/dropout.py: the same contract as torch's dropout, a mask drawn without `bernoulli_`."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

from model.dropout import Dropout, dropout
from model.tts import HamgaraTTS
from tests.helpers import make_batch, small_config


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_zeroes_a_share_p_of_the_elements(p: float) -> None:
    torch.manual_seed(0)
    y = dropout(torch.ones(400_000), p, training=True)
    # Binomial standard error at 400k draws is under 0.001: 0.005 is five of them.
    assert abs(float((y == 0).float().mean()) - p) < 0.005


def test_dropout_scales_the_kept_elements_so_the_expectation_is_unchanged() -> None:
    torch.manual_seed(0)
    x = torch.randn(1000) + 3.0
    y = dropout(x, 0.3, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert abs(float(dropout(torch.ones(400_000), 0.3, training=True).mean()) - 1.0) < 0.01


def test_dropout_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 32, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    y.sum().backward()
    assert x.grad is not None
    expected = (y.detach() != 0).float() / 0.75
    torch.testing.assert_close(x.grad, expected)


def test_dropout_is_the_identity_in_eval_and_at_p_zero() -> None:
    x = torch.randn(8, 8)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x


def test_dropout_at_p_one_zeroes_everything_as_torch_does() -> None:
    x = torch.randn(8, 8)
    torch.testing.assert_close(dropout(x, 1.0, training=True), F.dropout(x, 1.0, training=True))


def test_dropout_repeats_under_the_same_seed() -> None:
    torch.manual_seed(5)
    a = dropout(torch.ones(1000), 0.5, training=True)
    torch.manual_seed(5)
    b = dropout(torch.ones(1000), 0.5, training=True)
    assert torch.equal(a, b)


def test_dropout_keeps_a_bf16_input_in_bf16() -> None:
    # Mixed precision hands it bf16 activations; its mask must not promote them to float32.
    y = dropout(torch.ones(100, dtype=torch.bfloat16), 0.2, training=True)
    assert y.dtype == torch.bfloat16


def test_dropout_module_rejects_a_probability_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_a_cpu_training_step_draws_no_bernoulli_mask() -> None:
    # The point of the module: with attention dropout off (attention dropout runs inside torch's
    # attention kernel, which has its own mask), a training step of either decoder on the CPU
    # never reaches bernoulli_, the operator that dominated the step's profile.
    torch.manual_seed(0)
    for decoder in ("autoregressive", "parallel"):
        model = HamgaraTTS(small_config(decoder, dropout=0.2, prenet_dropout=0.5, attention_dropout=0.0)).train()
        batch = make_batch([6, 9], [14, 22])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = model(batch)
            out.mel_post.sum().backward()
        ops = {e.key for e in prof.key_averages()}
        assert "aten::random_" in ops, decoder  # it did draw masks
        assert not any("bernoulli" in op for op in ops), decoder
