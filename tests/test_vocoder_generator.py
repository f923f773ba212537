"""The trained vocoder's generator, its STFT pair and its loss, as pure tensor functions: the
framing matches the mel's, the inverse STFT is exact, an untrained generator is Griffin-Lim's
starting spectrum, and the same mel always gives the same wave."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torchaudio

from helpers import speech_like
from model.mel import LogMel, MelSettings
from model.vocoder import TrainedVocoder
from model.vocoder_generator import GeneratorConfig, InverseSTFT, VocoderGenerator, stft
from model.vocoder_losses import vocoder_loss, vocoder_loss_terms

SETTINGS = MelSettings(22050, 1024, 256, 1024, 80, 0.0, 8000.0, 1e-5)
CONFIG = GeneratorConfig(dim=16, intermediate=32, layers=2, kernel=7)
HOP = SETTINGS.hop_length


def generator(phase_iters: int = 3, seed: int = 0) -> VocoderGenerator:
    torch.manual_seed(seed)
    return VocoderGenerator(SETTINGS, CONFIG, phase_iters, momentum=0.99).eval()


def speech_mel(seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """The log-mel [1, frames, n_mels] of a speech-like tone, as precompute would store it."""
    wave = torch.from_numpy(speech_like(seconds, SETTINGS.sample_rate, seed=seed, edge=0.0))
    return LogMel(SETTINGS)(wave[None])


@pytest.mark.parametrize("win_length", [1024, 800])
def test_the_inverse_stft_gives_back_the_wave(win_length: int) -> None:
    settings = dataclasses.replace(SETTINGS, win_length=win_length)
    wave = torch.randn(2, 40 * HOP, generator=torch.Generator().manual_seed(0))
    spectrum = stft(wave, settings)
    assert spectrum.shape == (2, settings.n_fft // 2 + 1, 40)
    rebuilt = InverseSTFT(settings)(spectrum)
    assert rebuilt.shape == wave.shape
    assert (rebuilt - wave).abs().max().item() < 1e-5


@pytest.mark.parametrize("samples", [40 * HOP, 40 * HOP + 1, 41 * HOP - 1, 3 * HOP])
def test_the_stft_has_the_frames_of_the_mel(samples: int) -> None:
    # The generator's frame t is trained toward the recording's STFT frame t: both must be
    # framed as model/mel.py frames the stored mel, or every target is shifted.
    wave = torch.randn(1, samples, generator=torch.Generator().manual_seed(1))
    frames = stft(wave, SETTINGS).size(-1)
    assert frames == samples // HOP
    assert frames == LogMel(SETTINGS)(wave).size(-2)


@pytest.mark.parametrize("win_length", [1024, 800])
def test_the_stft_frames_are_the_mel_frames_bin_for_bin(win_length: int) -> None:
    # Not only the count: the mel filters applied to the STFT magnitude are the stored mel
    # (same window, same placement, also for a window shorter than n_fft).
    settings = dataclasses.replace(SETTINGS, win_length=win_length)
    wave = torch.from_numpy(speech_like(0.4, settings.sample_rate, seed=2, edge=0.0))[None]
    bins = settings.n_fft // 2 + 1
    filters = torchaudio.functional.melscale_fbanks(
        bins, settings.fmin, settings.fmax, settings.n_mels, settings.sample_rate, norm="slaney", mel_scale="slaney"
    )
    mel = (stft(wave, settings).abs().transpose(1, 2) @ filters).clamp_min(settings.log_clamp).log()
    torch.testing.assert_close(mel, LogMel(settings)(wave), atol=1e-4, rtol=1e-4)


def test_an_untrained_generator_predicts_the_filterbank_inverse() -> None:
    # The head starts at zero, so the network's first job is the phase, not relearning the
    # filterbank: its magnitude is the least-squares inverse of the mel filters (clamped).
    mel = speech_mel()
    bins = SETTINGS.n_fft // 2 + 1
    filters = torchaudio.functional.melscale_fbanks(
        bins, SETTINGS.fmin, SETTINGS.fmax, SETTINGS.n_mels, SETTINGS.sample_rate, norm="slaney", mel_scale="slaney"
    )
    inverse = torch.linalg.pinv(filters.double())  # [n_mels, bins]
    prior = (mel.double().exp() @ inverse).clamp_min(SETTINGS.log_clamp).log()
    prior = prior.clamp(math.log(SETTINGS.log_clamp), math.log(1e3)).transpose(1, 2).float()
    with torch.no_grad():
        log_magnitude = generator().log_magnitude(mel)
    assert log_magnitude.shape == (1, bins, mel.size(1))
    torch.testing.assert_close(log_magnitude, prior, atol=1e-4, rtol=1e-4)


def test_the_generator_gives_hop_samples_per_frame() -> None:
    mel = torch.cat([speech_mel(0.5, seed=0), speech_mel(0.5, seed=1)])
    with torch.no_grad():
        wave = generator()(mel)
    assert wave.shape == (2, mel.size(1) * HOP)
    assert torch.isfinite(wave).all()


def test_the_same_mel_gives_the_same_wave_twice() -> None:
    # Zero initial phase, no randomness: evaluation scores are reproducible run to run.
    mel = speech_mel(0.3)
    with torch.no_grad():
        first, second = generator(seed=0)(mel), generator(seed=7)(mel)
    assert torch.equal(first, second)  # untrained: both are the filterbank inverse's phase-only rebuild
    g = generator()
    with torch.no_grad():
        g.head.weight.normal_(0.0, 0.1)  # as a trained head: the network's output counts
        assert torch.equal(g(mel), g(mel))
        assert not torch.equal(g(mel), first)


def test_zero_phase_iterations_still_give_a_finite_wave() -> None:
    mel = speech_mel()
    with torch.no_grad():
        wave = generator(phase_iters=0)(mel)
    assert wave.shape == (1, mel.size(1) * HOP)
    assert torch.isfinite(wave).all() and wave.abs().max() > 0


def test_a_perfect_prediction_has_no_loss() -> None:
    target = torch.rand(2, 513, 10, generator=torch.Generator().manual_seed(0)) + 0.1
    terms = vocoder_loss_terms(target.log(), target, SETTINGS.log_clamp)
    assert terms["log_l1"].item() < 1e-6
    assert terms["spectral_convergence"].item() < 1e-6
    assert vocoder_loss(terms, 1.0).item() < 1e-5


def test_a_wrong_prediction_has_a_positive_loss_in_both_terms() -> None:
    target = torch.rand(2, 513, 10, generator=torch.Generator().manual_seed(0)) + 0.1
    terms = vocoder_loss_terms(target.log() + 0.2, target, SETTINGS.log_clamp)
    assert terms["log_l1"].item() == pytest.approx(0.2, abs=1e-5)
    assert terms["spectral_convergence"].item() == pytest.approx(math.exp(0.2) - 1, rel=1e-4)
    assert vocoder_loss(terms, 2.0).item() == pytest.approx(0.2 + 2 * (math.exp(0.2) - 1), rel=1e-4)


def test_the_spectral_convergence_is_relative_to_the_loudness() -> None:
    # The same relative error of a quiet and of a loud recording costs the same.
    target = torch.rand(1, 513, 10, generator=torch.Generator().manual_seed(0)) + 0.1
    quiet = vocoder_loss_terms((target * 1.5).log(), target, SETTINGS.log_clamp)["spectral_convergence"]
    loud = vocoder_loss_terms((target * 150).log(), target * 100, SETTINGS.log_clamp)["spectral_convergence"]
    assert quiet.item() == pytest.approx(0.5, rel=1e-5)
    assert loud.item() == pytest.approx(quiet.item(), rel=1e-5)


def test_the_true_magnitude_is_floored_like_the_prediction() -> None:
    # A silent bin in the recording must not give log(0) = -inf in the loss.
    target = torch.zeros(1, 513, 4)
    terms = vocoder_loss_terms(torch.full_like(target, math.log(SETTINGS.log_clamp)), target, SETTINGS.log_clamp)
    assert all(torch.isfinite(v) for v in terms.values())
    assert terms["log_l1"].item() == 0.0


def test_the_trained_vocoder_pads_a_mel_too_short_to_invert() -> None:
    # An undertrained autoregressive model whose stop fires at once makes a one-frame mel; the
    # phase reconstruction's reflect padding cannot take it, so it is padded, not fatal.
    vocoder = TrainedVocoder(generator(phase_iters=2))
    one_frame = speech_mel()[0, :1]
    with pytest.raises(RuntimeError):  # what padding avoids
        with torch.no_grad():
            vocoder.generator(one_frame[None])
    wave = vocoder(one_frame)
    assert wave.shape == (vocoder.min_frames() * HOP,)
    assert torch.isfinite(wave).all()


def test_the_trained_vocoder_takes_one_mel_or_a_batch_and_answers_on_the_cpu() -> None:
    vocoder = TrainedVocoder(generator(phase_iters=2))
    mel = speech_mel(0.3)[0]
    one = vocoder(mel)
    batch = vocoder(torch.stack([mel, mel]).double())
    assert one.shape == (mel.size(0) * HOP,) and batch.shape == (2, mel.size(0) * HOP)
    assert one.device.type == "cpu" and batch.device.type == "cpu"
    assert one.dtype == torch.float32 and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0], one)
    assert vocoder.sample_rate == SETTINGS.sample_rate
