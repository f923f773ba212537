"""The acoustic model's contracts, on random tiny batches: masks, causality, the cache,
and synthesis that ends."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import make_batch, small_config
from model.tts import HamgaraTTS, TTSBatch

DECODERS = ("autoregressive", "parallel")


def take(batch: TTSBatch, i: int) -> TTSBatch:
    """Utterance i alone, cut to its own lengths."""
    n, t = int(batch.token_mask[i].sum()), int(batch.frame_mask[i].sum())
    return TTSBatch(
        batch.tokens[i : i + 1, :n],
        batch.token_mask[i : i + 1, :n],
        batch.speakers[i : i + 1],
        batch.languages[i : i + 1],
        batch.mels[i : i + 1, :t],
        batch.frame_mask[i : i + 1, :t],
        batch.durations[i : i + 1, :n],
    )


def model_for(decoder: str) -> HamgaraTTS:
    torch.manual_seed(0)
    return HamgaraTTS(small_config(decoder)).eval()


@pytest.mark.parametrize("decoder", DECODERS)
def test_an_utterance_computes_the_same_alone_and_in_a_padded_batch(decoder: str) -> None:
    model = model_for(decoder)
    batch = make_batch([6, 11, 9], [14, 31, 22])
    together = model(batch)
    alone = model(take(batch, 0))
    torch.testing.assert_close(together.mel_post[0, :14], alone.mel_post[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.log_durations[0, :6], alone.log_durations[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decoder", DECODERS)
def test_what_sits_in_padding_changes_nothing(decoder: str) -> None:
    model = model_for(decoder)
    batch = make_batch([6, 11], [14, 31])
    noisy = dataclasses.replace(
        batch,
        tokens=torch.where(batch.token_mask, batch.tokens, torch.randint(2, 30, batch.tokens.shape)),
        mels=torch.where(batch.frame_mask[..., None], batch.mels, 100 * torch.randn_like(batch.mels)),
    )
    torch.testing.assert_close(model(batch).mel_post[0, :14], model(noisy).mel_post[0, :14], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decoder", DECODERS)
def test_text_convolutions_keep_an_utterance_independent_of_its_batch_and_its_padding(decoder: str) -> None:
    torch.manual_seed(0)
    model = HamgaraTTS(small_config(decoder, text_conv_layers=2, text_conv_kernel=5)).eval()
    batch = make_batch([6, 11, 9], [14, 31, 22])
    noisy = dataclasses.replace(
        batch, tokens=torch.where(batch.token_mask, batch.tokens, torch.randint(2, 30, batch.tokens.shape))
    )
    alone = model(take(batch, 0)).mel_post[0]
    torch.testing.assert_close(model(batch).mel_post[0, :14], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model(noisy).mel_post[0, :14], alone, atol=1e-5, rtol=1e-4)


def test_text_convolutions_reach_kernel_over_two_tokens_each_side_per_layer() -> None:
    from model.layers import TokenConvolutions

    torch.manual_seed(0)
    convs = TokenConvolutions(8, layers=2, kernel=3, dropout=0.0).eval()
    x, mask = torch.randn(1, 12, 8), torch.ones(1, 12, dtype=torch.bool)
    changed = x.clone()
    changed[0, 5] = torch.randn(8)  # not a constant shift, which the layer norm would remove
    with torch.no_grad():
        moved = (convs(x, mask) - convs(changed, mask)).abs().amax(dim=-1)[0]
    # Two layers of kernel 3 carry token 5 to tokens 3..7, and no further.
    assert bool((moved[3:8] > 1e-6).all())
    assert float(moved[:3].max()) == 0.0 and float(moved[8:].max()) == 0.0


@pytest.mark.parametrize("decoder", DECODERS)
def test_changing_the_real_tokens_changes_the_output(decoder: str) -> None:
    model = model_for(decoder)
    batch = make_batch([6, 11], [14, 31])
    other = batch.tokens.clone()
    other[0, :6] = (other[0, :6] + 7) % 28 + 2
    changed = dataclasses.replace(batch, tokens=other)
    diff = (model(batch).mel_post[0, :14] - model(changed).mel_post[0, :14]).abs().max()
    assert diff > 1e-3


def test_autoregressive_output_at_a_frame_ignores_later_frames() -> None:
    model = model_for("autoregressive")
    batch = make_batch([8], [30])
    memory = model.encoder(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    latent = torch.zeros(1, 4)
    base = model.decoder(batch.mels, batch.frame_mask, memory, batch.token_mask, latent).mel
    for k in (3, 7, 12):  # change every input frame from frame 2k on
        mels = batch.mels.clone()
        mels[:, 2 * k :] += torch.randn_like(mels[:, 2 * k :])
        out = model.decoder(mels, batch.frame_mask, memory, batch.token_mask, latent).mel
        # Step s (frames 2s, 2s+1) sees frames before 2s only: steps 0..k are unchanged.
        torch.testing.assert_close(out[:, : 2 * (k + 1)], base[:, : 2 * (k + 1)], atol=1e-5, rtol=1e-4)
        assert (out[:, 2 * (k + 1) :] - base[:, 2 * (k + 1) :]).abs().max() > 1e-4


@pytest.mark.parametrize("decoder", DECODERS)
def test_synthesis_of_unseen_text_ends_with_a_plausible_length(decoder: str) -> None:
    model = model_for(decoder)
    batch = make_batch([7, 12], [20, 36], seed=3)
    out = model.synthesize(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    predicted = out.durations.sum(1)
    assert torch.all(out.lengths > 0)
    # An untrained stop rarely fires: the length cap (max_length_factor x predicted) ends the run.
    cap = torch.ceil(2.0 * predicted / 2).long() * 2
    assert torch.all(out.lengths <= cap)
    if decoder == "parallel":
        assert torch.equal(out.lengths, predicted)
    real = out.durations[batch.token_mask & (batch.tokens != 1)]
    assert real.min() >= 1  # no phone is skipped


def test_synthesis_takes_the_style_latent_from_a_reference_mel() -> None:
    model = model_for("parallel")
    batch = make_batch([7], [20])
    plain = model.synthesize(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
    styled = model.synthesize(
        batch.tokens, batch.token_mask, batch.languages, batch.speakers, reference=(batch.mels, batch.frame_mask)
    )
    assert (plain.mel - styled.mel).abs().max() > 1e-4


def test_fused_self_attention_equals_the_attention_that_returns_weights() -> None:
    from model.layers import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, dropout=0.1).eval()
    x = torch.randn(2, 7, 16)
    real = torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None]
    causal = torch.tril(torch.ones(7, 7, dtype=torch.bool))[None] & real[:, None, :]
    for allowed in (real[:, None, :], causal):
        expected, _ = attn(x, attn.project_kv(x), allowed)
        got = attn.attend(x, attn.project_kv(x), allowed)
        assert torch.allclose(got[real], expected[real], atol=1e-5)
        assert torch.isfinite(got).all()  # padded queries too: callers mask them, NaN would leak


@pytest.mark.parametrize("decoder", DECODERS)
def test_attention_never_runs_with_the_cudnn_backend_enabled(decoder: str, monkeypatch) -> None:
    # cuDNN's attention builds a graph per new shape: on a GPU under bf16 that made every
    # length-bucketed step ~300 ms slower (benchmarks/cuda_check.py). A CPU cannot run that
    # backend, but it can see the switch that torch consults when choosing it.
    seen: list[bool] = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = model_for(decoder).train()
    model(make_batch([6, 11], [14, 31])).mel_post.sum().backward()
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored for everyone else afterwards


@pytest.mark.parametrize("frames,window", [(7, 2), (12, 4), (5, 9), (1, 3)])
def test_local_self_attention_equals_full_attention_under_a_banded_mask(frames: int, window: int) -> None:
    from model.layers import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, dropout=0.1).eval()
    x = torch.randn(2, frames, 16)
    real = torch.arange(frames)[None, :] < torch.tensor([frames, max(1, frames - 3)])[:, None]
    pos = torch.arange(frames)
    band = (pos[:, None] - pos[None, :]).abs() <= window
    expected, _ = attn(x, attn.project_kv(x), band[None] & real[:, None, :])
    got = attn.attend_local(x, real, window)
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert torch.isfinite(got).all()  # padded queries too: callers mask them, NaN would leak


def test_a_frame_window_wider_than_every_utterance_changes_nothing() -> None:
    batch = make_batch([6, 11], [14, 31])
    torch.manual_seed(0)
    full = HamgaraTTS(small_config("parallel")).eval()
    torch.manual_seed(0)
    windowed = HamgaraTTS(small_config("parallel", frame_attention_window=40)).eval()
    torch.testing.assert_close(windowed(batch).mel_post, full(batch).mel_post, atol=1e-5, rtol=1e-4)


def test_a_narrow_frame_window_keeps_utterances_independent_of_their_batch() -> None:
    torch.manual_seed(0)
    model = HamgaraTTS(small_config("parallel", frame_attention_window=3)).eval()
    batch = make_batch([6, 11, 9], [14, 31, 22])
    together, alone = model(batch), model(take(batch, 0))
    torch.testing.assert_close(together.mel_post[0, :14], alone.mel_post[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decoder", DECODERS)
def test_attention_dropout_is_its_own_knob(decoder: str) -> None:
    from model.layers import FeedForward, MultiHeadAttention

    model = HamgaraTTS(small_config(decoder, dropout=0.2, attention_dropout=0.0))
    attention = [m.dropout.p for m in model.modules() if isinstance(m, MultiHeadAttention)]
    feed_forward = [m.net[2].p for m in model.modules() if isinstance(m, FeedForward)]
    assert attention and set(attention) == {0.0}
    assert feed_forward and set(feed_forward) == {0.2}
