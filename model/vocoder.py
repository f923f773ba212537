"""Mel -> waveform. Griffin-Lim by default: no pretrained neural vocoder can be downloaded here.

Anything with `sample_rate` and `__call__(log_mel [frames, n_mels]) -> wave [samples]`
is a vocoder; a neural generator (e.g. a HiFi-GAN state dict) can implement the same protocol.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torchaudio

from model.mel import MelSettings


class Vocoder(Protocol):
    """The interface every vocoder implements."""

    sample_rate: int

    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor: ...


class GriffinLimVocoder:
    """Inverts a natural-log mel: exp, least-squares inverse of the mel filters, Griffin-Lim phase."""

    def __init__(self, settings: MelSettings, n_iter: int = 60) -> None:
        self.settings = settings
        self.sample_rate = settings.sample_rate
        n_stft = settings.n_fft // 2 + 1
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_stft,
            n_mels=settings.n_mels,
            sample_rate=settings.sample_rate,
            f_min=settings.fmin,
            f_max=settings.fmax,
            norm="slaney",
            mel_scale="slaney",
        )
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=settings.n_fft,
            n_iter=n_iter,
            win_length=settings.win_length,
            hop_length=settings.hop_length,
            power=1.0,
        )

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        mel = torch.exp(log_mel.float()).transpose(-1, -2)  # [..., n_mels, frames]
        linear = self.inverse_mel(mel).clamp_min(0.0)
        return self.griffin_lim(linear)
