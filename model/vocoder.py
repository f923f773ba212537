"""Mel -> waveform: Griffin-Lim, or the generator the vocoder stage trains on the corpus (no
pretrained vocoder can be downloaded here).

Anything with `sample_rate` and `__call__(log_mel [frames, n_mels]) -> wave [samples]` is a
vocoder. Files of exported generators (torch.export `.pt2`, TorchScript) are refused, not
loaded: loading either can run code hidden in the file. torch.export.load retries a member
that fails `weights_only` unpickling with unrestricted pickle (a crafted `.pt2` ran `os.system`
here under torch 2.11), and a TorchScript archive carries programs. A vocoder Hamgara loads
must be one whose weights load with `weights_only=True` into code of ours.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torchaudio

from model.mel import MelSettings
from model.vocoder_generator import VocoderGenerator


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
            # Zero initial phase instead of random: the same mel always gives the same wave, so
            # evaluation scores (MCD, WER) are reproducible run to run.
            rand_init=False,
        )

    def min_frames(self) -> int:
        """The fewest frames Griffin-Lim can invert: its STFT pads the wave by half a window on
        each side, which needs a wave longer than that."""
        return self.settings.n_fft // (2 * self.settings.hop_length) + 2

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [..., frames, n_mels] -> wave. A mel shorter than `min_frames` (an undertrained
        autoregressive model whose stop fires at once makes one) is padded with silence to that
        length, so it is scored, badly, instead of stopping the evaluation."""
        log_mel = log_mel.float()
        short = self.min_frames() - log_mel.size(-2)
        if short > 0:
            silence = torch.full((*log_mel.shape[:-2], short, log_mel.size(-1)), math.log(self.settings.log_clamp))
            log_mel = torch.cat([log_mel, silence], dim=-2)
        mel = torch.exp(log_mel).transpose(-1, -2)  # [..., n_mels, frames]
        linear = self.inverse_mel(mel).clamp_min(0.0)
        # torchaudio's frames are centred on t * hop; the mel's (model/mel.py) on t * hop + hop / 2.
        # Delayed by half a hop the wave lines up with the recording sample for sample, which
        # copy-synthesis scores that do not realign (ESTOI) need.
        return torch.nn.functional.pad(self.griffin_lim(linear), (self.settings.hop_length // 2, 0))


class TrainedVocoder:
    """The vocoder stage's generator, run without gradients on `device`; waves come back on the CPU."""

    def __init__(self, generator: VocoderGenerator, device: torch.device | str = "cpu") -> None:
        self.generator = generator.to(device).eval()
        self.device = torch.device(device)
        self.settings = generator.settings
        self.sample_rate = generator.settings.sample_rate

    def min_frames(self) -> int:
        """The fewest frames the phase reconstruction's STFT can reflect-pad."""
        return (self.settings.n_fft - self.settings.hop_length) // (2 * self.settings.hop_length) + 2

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [frames, n_mels] or [B, frames, n_mels] -> wave [samples] or [B, samples];
        a mel shorter than `min_frames` is padded with silence, as Griffin-Lim's is."""
        single = log_mel.dim() == 2
        mel = log_mel.float().to(self.device)
        mel = mel.unsqueeze(0) if single else mel
        short = self.min_frames() - mel.size(-2)
        if short > 0:
            silence = torch.full(
                (mel.size(0), short, mel.size(-1)), math.log(self.settings.log_clamp), device=mel.device
            )
            mel = torch.cat([mel, silence], dim=-2)
        wave = self.generator(mel).float().cpu()
        return wave[0] if single else wave


class UnsafeVocoderError(ValueError):
    """A vocoder file of a format whose loading can run code."""


def load_vocoder(
    spec: str, settings: MelSettings, griffin_lim_iters: int, device: torch.device | str = "cpu"
) -> Vocoder:
    """`griffin_lim`; anything else (the path of an exported generator) is refused, saying why,
    before the file is opened."""
    if spec == "griffin_lim":
        return GriffinLimVocoder(settings, griffin_lim_iters)
    raise UnsafeVocoderError(
        f"vocoder {spec[:80]!r}{'...' if len(spec) > 80 else ''}: Hamgara loads no exported vocoder file (torch.export .pt2 or TorchScript): "
        "loading either can run code hidden in the file, so a file from anyone else could take over "
        "this machine. Use griffin_lim (eval.vocoder: griffin_lim, or leave out synth --vocoder)"
    )
