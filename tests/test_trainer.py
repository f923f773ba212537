"""The training step's mechanics, each a code path that must be wired in."""

from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import pytest
import torch

from helpers import committed_params, make_batch, small_config
from model.config import LossSettings, LossWeights
from model.tts import HamgaraTTS, TTSBatch
from pipeline.config import TrainConfig, train_config
from pipeline.training.schedule import ScheduleConfig, lr_at
from pipeline.training.step import Trainer, TrainingAborted

SETTINGS = LossSettings(0.6, 0.025, 0.06, 5.0, 0.0, 2)
WEIGHTS = LossWeights(mel=22.0, kl=1.8, stop=1.5, attention=0.3, duration=1.0)
CFG = dataclasses.replace(
    train_config(committed_params()),
    lr=1e-3,
    lr_schedule="cosine_restarts",
    warmup_steps=2,
    restart_period=10,
    restart_mult=2.0,
    min_lr=1e-7,
    plateau_factor=0.7,
    plateau_patience=1,
    grad_clip=1e9,
    grad_accumulation=1,
    mixed_precision=True,
    early_stop_patience=1,
    early_stop_min_delta=5e-5,
    convergence_window=5,
    max_nonfinite=3,
    kl_warmup_steps=4,
    adaptive_loss_weights=False,
    adaptive_bound=4.0,
    adaptive_strength=0.5,
    loss_ema=0.08,
)
CPU = torch.device("cpu")


def trainer(cfg: TrainConfig = CFG, seed: int = 0, **model_changes: object) -> Trainer:
    torch.manual_seed(seed)
    model = HamgaraTTS(small_config("autoregressive", **model_changes))
    return Trainer(model, cfg, SETTINGS, WEIGHTS, CPU)


def cat(a: TTSBatch, b: TTSBatch) -> TTSBatch:
    return TTSBatch(**{k: torch.cat([getattr(a, k), getattr(b, k)]) for k in a.__dict__})


def params_of(t: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.model.parameters()])


def grads_of(t: Trainer) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in t.model.parameters()])


def weights_only_round_trip(state: dict) -> dict:
    """`state` saved with torch.save and read back as every checkpoint is: weights only."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_accumulating_two_micro_batches_equals_one_double_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic forward passes: no dropout, the latent's mean instead of a sample.
    monkeypatch.setattr("model.tts.sample_latent", lambda mu, logvar, training: mu)
    a, b = make_batch([6, 6], [20, 20], seed=1), make_batch([6, 6], [20, 20], seed=2)
    accumulated = trainer(
        dataclasses.replace(CFG, grad_accumulation=2), dropout=0.0, attention_dropout=0.0, prenet_dropout=0.0
    )
    single = trainer(dropout=0.0, attention_dropout=0.0, prenet_dropout=0.0)
    accumulated.train_step([a, b])
    single.train_step([cat(a, b)])
    # The gradients the optimizer applied (Adam's first step would amplify float noise in
    # near-zero gradients, so the parameters are not the thing to compare).
    torch.testing.assert_close(grads_of(accumulated), grads_of(single), atol=1e-6, rtol=1e-4)


def test_the_gradient_is_clipped_and_its_norm_logged_before_clipping() -> None:
    t = trainer(dataclasses.replace(CFG, grad_clip=0.01))
    log = t.train_step([make_batch([6, 9], [20, 30])])
    applied = torch.sqrt(sum((p.grad**2).sum() for p in t.model.parameters() if p.grad is not None))
    assert log["grad_norm"] > 0.01
    assert float(applied) == pytest.approx(0.01, rel=1e-3)


def test_the_learning_rate_follows_the_schedule() -> None:
    t = trainer()
    for step in range(4):
        log = t.train_step([make_batch([6], [20], seed=step)])
        assert log["lr"] == pytest.approx(lr_at(step, ScheduleConfig.of(CFG)))
        assert t.opt.param_groups[0]["lr"] == pytest.approx(lr_at(step, ScheduleConfig.of(CFG)))


def test_a_non_finite_loss_skips_the_update_and_too_many_abort() -> None:
    t = trainer()
    bad = make_batch([6], [20])
    bad.mels[0, 3, 2] = float("nan")
    before = params_of(t).clone()
    log = t.train_step([bad])
    assert torch.equal(params_of(t), before)
    assert log["skipped_steps"] == 1
    t.train_step([make_batch([6], [20])])  # a good step resets the streak
    assert t.nonfinite_streak == 0
    with pytest.raises(TrainingAborted, match="non-finite steps in a row"):
        for _ in range(3):
            t.train_step([bad])


def test_validation_without_improvement_reduces_the_lr_and_stops_early() -> None:
    t = trainer()
    val = [make_batch([6, 8], [20, 26], seed=5)]
    first = t.validate(val)
    assert first["lr_reduced"] == 0.0 and first["stop"] == 0.0
    second = t.validate(val)  # same weights: no improvement; patience 1
    assert second["lr_reduced"] == 1.0 and second["stop"] == 1.0
    assert t.plateau.scale == pytest.approx(0.7)
    assert t.train_step([make_batch([6], [20])])["lr"] == pytest.approx(lr_at(0, ScheduleConfig.of(CFG), 0.7))


def test_adaptive_weights_are_applied_and_logged() -> None:
    t = trainer(dataclasses.replace(CFG, adaptive_loss_weights=True))
    t.train_step([make_batch([6], [20])])
    log = t.train_step([make_batch([6], [20], seed=1)])
    factors = {k: v for k, v in log.items() if k.startswith("adaptive/")}
    assert factors and all(0.25 <= v <= 4.0 for v in factors.values())
    assert any(abs(v - 1.0) > 1e-3 for v in factors.values())


def test_a_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one() -> None:
    batches = [make_batch([6, 9], [20, 30], seed=s) for s in range(6)]
    straight = trainer(dataclasses.replace(CFG, adaptive_loss_weights=True))
    for b in batches:
        straight.train_step([b])
    first = trainer(dataclasses.replace(CFG, adaptive_loss_weights=True))
    for b in batches[:3]:
        first.train_step([b])
    state = weights_only_round_trip(first.state_dict())  # as last.pt is written and read
    torch.manual_seed(123)  # whatever happens in between must not matter
    resumed = trainer(dataclasses.replace(CFG, adaptive_loss_weights=True), seed=99)
    resumed.load_state_dict(state)
    for b in batches[3:]:
        resumed.train_step([b])
    assert torch.equal(params_of(resumed), params_of(straight))
    assert resumed.step == straight.step == 6


def test_the_trainer_state_loads_weights_only_and_restores_every_rng() -> None:
    t = trainer()
    t.train_step([make_batch([6], [20])])
    np.random.normal()  # numpy's legacy state then caches a gaussian: that must survive too
    state = weights_only_round_trip(t.state_dict())
    expected = (np.random.normal(), np.random.rand(3).tolist(), random.random(), torch.rand(3).tolist())
    trainer(seed=7).load_state_dict(state)
    assert (np.random.normal(), np.random.rand(3).tolist(), random.random(), torch.rand(3).tolist()) == expected


def test_the_fused_optimizer_makes_the_update_of_the_plain_adamw_loop() -> None:
    from pipeline.training.step import adamw

    torch.manual_seed(0)
    fused_model = torch.nn.Linear(8, 4)
    loop_model = torch.nn.Linear(8, 4)
    loop_model.load_state_dict(fused_model.state_dict())
    fused = adamw(fused_model, 1e-2, torch.device("cpu"))
    loop = torch.optim.AdamW(loop_model.parameters(), lr=1e-2, foreach=False)
    assert fused.defaults["fused"]
    for step in range(3):
        x = torch.randn(5, 8, generator=torch.Generator().manual_seed(step))
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
