"""Log-mel spectrograms, HiFi-GAN compatible: the one definition used in precompute and synthesis."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio


@dataclass(frozen=True)
class MelSettings:
    """STFT and mel-filter settings; stored with the features so synthesis uses the same ones."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    log_clamp: float


class LogMel(torch.nn.Module):
    """waveform [..., samples] -> natural-log mel [..., frames, n_mels], frames = samples // hop.

    Like HiFi-GAN: magnitude (power 1) STFT of a reflect-padded signal without centering,
    Slaney mel filters, log of the clamped magnitude.
    """

    def __init__(self, s: MelSettings) -> None:
        super().__init__()
        self.settings = s
        self.pad = (s.n_fft - s.hop_length) // 2
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=s.sample_rate,
            n_fft=s.n_fft,
            win_length=s.win_length,
            hop_length=s.hop_length,
            f_min=s.fmin,
            f_max=s.fmax,
            n_mels=s.n_mels,
            power=1.0,
            center=False,
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(wave.unsqueeze(-2), (self.pad, self.pad), mode="reflect").squeeze(-2)
        mel = self.mel(padded)
        return torch.log(torch.clamp(mel, min=self.settings.log_clamp)).transpose(-1, -2)
