"""Mel -> waveform. Griffin-Lim by default: no pretrained neural vocoder can be downloaded here.

Anything with `sample_rate` and `__call__(log_mel [frames, n_mels]) -> wave [samples]` is a
vocoder. A neural generator trained on the same mel settings (Hamgara's mels are HiFi-GAN's:
natural log, Slaney filters, 22.05 kHz, hop 256) plugs in as an exported file, so no model
code of ours has to match its architecture. The generator maps log-mel [B, n_mels, T] to a
wave [B, 1, S] or [B, S]; export it once, with torch.export (a `.pt2` file, T dynamic):

    T = torch.export.Dim("T", min=2, max=100000)
    ep = torch.export.export(generator.eval(), (torch.zeros(1, 80, 100),), dynamic_shapes={"mel": {2: T}})
    torch.export.save(ep, "hifigan.pt2")      # "mel": the name of the generator's forward argument

or with TorchScript (deprecated by torch but still loaded: any other suffix):

    torch.jit.script(generator.eval()).save("hifigan.pt")

and point `eval.vocoder` (or `hamgara synth --vocoder`) at the file.
"""

from __future__ import annotations

import math
from pathlib import Path
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
        return self.griffin_lim(linear)


class ExportedVocoder:
    """A neural vocoder exported with torch.export (`.pt2`) or TorchScript (any other suffix):
    log-mel [B, n_mels, T] in, wave out."""

    def __init__(self, path: str | Path, settings: MelSettings, device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"vocoder {self.path}: no such file (expected an exported generator)")
        try:
            if self.path.suffix == ".pt2":
                # An exported program is already in inference form (it has no train/eval switch).
                self.module = torch.export.load(str(self.path)).module().to(device)
            else:
                self.module = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as e:  # each loader raises its own kinds for a foreign file
            kind = "torch.export" if self.path.suffix == ".pt2" else "TorchScript"
            raise ValueError(
                f"vocoder {self.path}: not a {kind} file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
            ) from e
        self.device = torch.device(device)
        self.sample_rate = settings.sample_rate

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        mel = log_mel.float().to(self.device).transpose(-1, -2)
        batched = mel.dim() == 3
        wave = self.module(mel if batched else mel[None])
        wave = wave.reshape(wave.size(0), -1).cpu()
        return wave if batched else wave[0]


def load_vocoder(
    spec: str, settings: MelSettings, griffin_lim_iters: int, device: torch.device | str = "cpu"
) -> Vocoder:
    """`griffin_lim`, or the path of an exported generator (`.pt2`: torch.export; else TorchScript)."""
    if spec == "griffin_lim":
        return GriffinLimVocoder(settings, griffin_lim_iters)
    return ExportedVocoder(spec, settings, device)
