"""The model and its losses learn: every parameter gets a gradient, and one small batch is
overfit quickly, with the autoregressive decoder's attention settling on the duration path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import make_batch, small_config
from model.config import LossSettings, LossWeights
from model.losses import combine, duration_path
from model.objective import alignment_error, raw_losses
from model.tts import HamgaraTTS, TTSBatch

SETTINGS = LossSettings(
    huber_delta=0.6,
    mel_label_smoothing=0.025,
    stop_label_smoothing=0.06,
    stop_pos_weight=5.0,
    attention_soften=0.0,
    reduction=2,
)
WEIGHTS = LossWeights(mel=22.0, kl=1.8, stop=1.5, attention=0.3, duration=1.0)


def learnable_batch(seed: int = 0) -> TTSBatch:
    """Four utterances whose mel frames are a fixed vector per token, laid out by the
    durations: a mapping a correct model can learn in a few hundred steps."""
    batch = make_batch([8, 10, 7, 9], [40, 52, 33, 45], seed=seed)
    prototypes = torch.randn(30, 16, generator=torch.Generator().manual_seed(seed + 1)) * 1.5
    frame_token = duration_path(batch.durations, batch.token_mask, batch.mels.size(1)).argmax(-1)
    mels = prototypes[torch.gather(batch.tokens, 1, frame_token)] * batch.frame_mask[..., None]
    return dataclasses.replace(batch, mels=mels)


@pytest.mark.parametrize("decoder", ["autoregressive", "parallel"])
def test_every_parameter_receives_a_gradient_from_the_total_loss(decoder: str) -> None:
    torch.manual_seed(0)
    model = HamgaraTTS(small_config(decoder)).train()
    batch = make_batch([6, 11, 9], [14, 31, 22])
    combine(raw_losses(model(batch), batch, SETTINGS), WEIGHTS).total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_the_parallel_decoder_reports_no_stop_or_attention_term() -> None:
    model = HamgaraTTS(small_config("parallel"))
    batch = make_batch([6], [14])
    terms = combine(raw_losses(model(batch), batch, SETTINGS), WEIGHTS)
    assert set(terms.raw) == {"mel", "kl", "duration"}


def overfit(decoder: str, steps: int) -> tuple[list[float], list[float | None]]:
    torch.manual_seed(0)
    model = HamgaraTTS(small_config(decoder, dropout=0.0, prenet_dropout=0.2)).train()
    batch = learnable_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mel, align = [], []
    for _ in range(steps):
        out = model(batch)
        raw = raw_losses(out, batch, SETTINGS)
        err = alignment_error(out, batch, SETTINGS.reduction)
        mel.append(raw["mel"].item())
        align.append(None if err is None else float(err))
        opt.zero_grad()
        # KL kept small: the style latent of a 4-utterance batch is not what is tested here.
        combine(raw, dataclasses.replace(WEIGHTS, kl=0.01)).total.backward()
        opt.step()
    return mel, align


def test_the_autoregressive_model_overfits_a_batch_and_attends_along_the_durations() -> None:
    mel, align = overfit("autoregressive", steps=150)
    assert mel[-1] < mel[0] / 5  # measured: 1.24 -> 0.12 in 150 steps
    assert align[-1] is not None and align[0] is not None
    assert align[-1] < 0.5 * align[0] and align[-1] < 1.0  # measured: 2.6 -> 0.27 tokens


def test_the_parallel_model_overfits_a_batch() -> None:
    mel, _ = overfit("parallel", steps=100)
    assert mel[-1] < mel[0] / 20  # measured: 1.19 -> 0.015 in 100 steps
