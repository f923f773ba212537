"""The autoregressive decoder's remedies against exposure bias, each wired in and doing what it says."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import committed_params, make_batch, small_config
from model.tts import HamgaraTTS
from pipeline.config import train_config
from pipeline.training.step import Trainer


def _ar(**changes: object) -> HamgaraTTS:
    torch.manual_seed(0)
    return HamgaraTTS(small_config("autoregressive", **changes))


def _memory_and_latent(model: HamgaraTTS, batch) -> tuple[torch.Tensor, torch.Tensor]:
    memory = model.encoder(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    return memory, torch.randn(batch.tokens.size(0), model.cfg.latent)


@pytest.mark.parametrize("aligned", [False, True])
def test_cached_synthesis_equals_the_teacher_forced_pass_with_and_without_aligned_conditioning(aligned: bool) -> None:
    model = _ar(aligned_conditioning=aligned).eval()
    batch = make_batch([9], [30])
    memory, latent = _memory_and_latent(model, batch)
    mel, _, _, windows = model.decoder.generate(memory, batch.token_mask, latent, batch.durations, 1.0)
    frame_mask = torch.ones(1, mel.size(1), dtype=torch.bool)
    forced = model.decoder(mel, frame_mask, memory, batch.token_mask, latent, batch.durations, windows).mel
    torch.testing.assert_close(forced, mel, atol=1e-4, rtol=1e-4)


def test_aligned_conditioning_lets_each_step_hear_the_text_its_durations_place_it_at() -> None:
    model = _ar(aligned_conditioning=True).eval()
    batch = make_batch([6], [24])
    memory, latent = _memory_and_latent(model, batch)
    base = model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent, batch.durations).mel
    moved = batch.durations.roll(1, dims=1)  # the same frames, each token's span moved
    assert not torch.equal(moved, batch.durations)
    out = model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent, moved).mel
    assert (out - base).abs().max() > 1e-3


def test_without_aligned_conditioning_the_durations_change_nothing_in_training() -> None:
    model = _ar(aligned_conditioning=False).eval()
    batch = make_batch([6], [24])
    memory, latent = _memory_and_latent(model, batch)
    base = model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent, batch.durations).mel
    out = model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent, None).mel
    torch.testing.assert_close(out, base)


def test_aligned_conditioning_without_durations_is_refused() -> None:
    model = _ar(aligned_conditioning=True)
    batch = make_batch([6], [24])
    memory, latent = _memory_and_latent(model, batch)
    with pytest.raises(ValueError, match="durations"):
        model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent)


def test_full_scheduled_sampling_feeds_the_first_pass_own_prediction() -> None:
    model = _ar().eval()  # eval: no dropout and the latent is the posterior mean, so both passes are exact
    batch = make_batch([9, 6], [30, 20])
    out = model(batch, sampling=1.0)
    memory = model.encoder(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    latent, _ = model.reference(batch.mels, batch.frame_mask)
    args = (batch.frame_mask, memory, batch.token_mask, latent, batch.durations)
    own = model.decoder(batch.mels, *args).mel
    expected = model.decoder(own, *args).mel
    torch.testing.assert_close(out.mel_pre, expected)
    assert (out.mel_pre - model(batch).mel_pre).abs().max() > 1e-4


def test_scheduled_sampling_picks_one_source_per_decoder_step_and_no_gradient_flows_through_it() -> None:
    model = _ar()
    batch = make_batch([9, 6], [30, 20])
    memory, latent = _memory_and_latent(model, batch)
    torch.manual_seed(1)
    fed = model._fed_frames(batch, memory, latent, batch.durations, 0.5, 0.0)
    assert not fed.requires_grad
    from_truth = (fed == batch.mels).all(-1)  # [B, T]
    steps = from_truth[:, :30].reshape(2, 15, 2)
    assert (steps[..., 0] == steps[..., 1]).all()  # both frames of a step from one source
    assert 0 < int(steps[..., 0].sum()) < 30  # some steps of each source


def test_input_noise_perturbs_the_fed_frames_by_its_std_and_zero_leaves_them_alone() -> None:
    model = _ar()
    batch = make_batch([9], [400])
    memory, latent = _memory_and_latent(model, batch)
    assert torch.equal(model._fed_frames(batch, memory, latent, batch.durations, 0.0, 0.0), batch.mels)
    noisy = model._fed_frames(batch, memory, latent, batch.durations, 0.0, 0.3)
    assert float((noisy - batch.mels).std()) == pytest.approx(0.3, rel=0.05)


def test_the_remedies_leave_the_parallel_decoder_alone() -> None:
    torch.manual_seed(0)
    model = HamgaraTTS(small_config("parallel")).eval()
    batch = make_batch([9, 6], [30, 20])
    torch.testing.assert_close(model(batch, sampling=1.0, input_noise=0.5).mel_post, model(batch).mel_post)


def _trainer(**train: object) -> Trainer:
    cfg = dataclasses.replace(train_config(committed_params()), device="cpu", **train)
    model = HamgaraTTS(small_config("autoregressive"))
    return Trainer(model, cfg, cfg.loss_settings(2), cfg.loss_weights(), torch.device("cpu"))


def test_the_sampling_probability_ramps_linearly_to_its_maximum() -> None:
    trainer = _trainer(scheduled_sampling=0.5, scheduled_sampling_steps=100)
    seen = []
    for step in (0, 50, 100, 400):
        trainer.step = step
        seen.append(trainer.sampling_probability())
    assert seen == [0.0, 0.25, 0.5, 0.5]
    assert _trainer(scheduled_sampling=0.3, scheduled_sampling_steps=0).sampling_probability() == 0.3


def test_the_trainer_feeds_its_sampling_probability_and_noise_to_the_model(monkeypatch) -> None:
    trainer = _trainer(scheduled_sampling=0.4, scheduled_sampling_steps=0, input_noise=0.2)
    seen = []
    original = HamgaraTTS._fed_frames

    def spy(self, batch, memory, latent, durations, sampling, input_noise):
        seen.append((sampling, input_noise))
        return original(self, batch, memory, latent, durations, sampling, input_noise)

    monkeypatch.setattr(HamgaraTTS, "_fed_frames", spy)
    trainer.train_step([make_batch([9, 6], [30, 20])])
    assert seen == [(0.4, 0.2)]


@pytest.mark.parametrize("decoder", ["autoregressive", "parallel"])
def test_a_bf16_autocast_step_with_every_remedy_on_is_finite_and_keeps_fp32_weights(decoder: str) -> None:
    # CUDA's mixed-precision path, exercised on the CPU: bf16 autocast runs here too, so a dtype
    # error anywhere on the remedies' path (the no-grad first pass, mixing its bf16 predictions
    # into the fp32 targets, aligned conditioning) fails here before a GPU sees it.
    cfg = dataclasses.replace(
        train_config(committed_params()),
        device="cpu",
        scheduled_sampling=1.0,
        scheduled_sampling_steps=0,
        input_noise=0.1,
    )
    model = HamgaraTTS(small_config(decoder, aligned_conditioning=True))
    trainer = Trainer(model, cfg, cfg.loss_settings(2), cfg.loss_weights(), torch.device("cpu"))
    trainer.dtype = torch.bfloat16
    log = trainer.train_step([make_batch([9, 6], [30, 20])])
    assert trainer.skipped == 0 and torch.isfinite(torch.tensor(log["loss"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())
