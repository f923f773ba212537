"""benchmarks/synthesis_variants.py: the synthesis-time variants it scores do what they say."""

from __future__ import annotations

import json

import numpy as np
import torch

from benchmarks.synthesis_variants import append_row, global_variance, gv_postfilter, keep_prenet_dropout
from model.layers import Prenet


def smooth_mel(frames: int = 200, channels: int = 6, spread: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((frames, channels)) * spread - 4.0).astype(np.float32)


def test_the_postfilter_at_strength_one_gives_each_channel_the_target_variance() -> None:
    mel = smooth_mel()
    target = np.linspace(0.5, 2.0, mel.shape[1])
    out = gv_postfilter(mel, target, 1.0)
    np.testing.assert_allclose(out.var(axis=0), target, rtol=1e-4)
    np.testing.assert_allclose(out.mean(axis=0), mel.mean(axis=0), atol=1e-5)  # the level is kept


def test_the_postfilter_at_strength_zero_changes_nothing() -> None:
    mel = smooth_mel()
    np.testing.assert_allclose(gv_postfilter(mel, np.full(mel.shape[1], 3.0), 0.0), mel, atol=1e-6)


def test_the_target_is_the_mean_over_utterances_of_each_channels_variance() -> None:
    a, b = smooth_mel(spread=1.0, seed=1), smooth_mel(spread=2.0, seed=2)
    np.testing.assert_allclose(global_variance([a, b]), (a.var(axis=0) + b.var(axis=0)) / 2)


def test_prenet_dropout_at_synthesis_draws_masks_in_eval_mode_repeatably() -> None:
    torch.manual_seed(0)
    plain, kept = Prenet(12, 16, 8, 0.5).eval(), Prenet(12, 16, 8, 0.5).eval()
    kept.load_state_dict(plain.state_dict())
    keep_prenet_dropout(kept, 0.5)
    x = torch.randn(3, 5, 12)
    torch.manual_seed(1)
    first = kept(x)
    torch.manual_seed(1)
    again = kept(x)
    assert torch.equal(first, again)  # seeded: the same masks
    assert not torch.allclose(first, plain(x))  # the eval-mode prenet has no dropout


def test_each_run_adds_its_row_and_keeps_the_earlier_ones(tmp_path) -> None:
    out = tmp_path / "results.json"
    append_row(out, {"seed": 1})
    append_row(out, {"seed": 7})
    assert json.loads(out.read_text(encoding="utf-8"))["rows"] == [{"seed": 1}, {"seed": 7}]
