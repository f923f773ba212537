"""The trained vocoder's generator: log-mel -> waveform, Vocos-style.

Everything runs at the mel's frame rate: a convolutional embedding, ConvNeXt blocks, and a head
that predicts, per frame, a log-magnitude correction and a phase for each STFT bin. The
magnitude starts from the least-squares inverse of the mel filters (the spectrum Griffin-Lim
starts from, as FreeV does), so the network's first job is the phase, not relearning the
filterbank.

Frames are placed exactly as model/mel.py's analysis places them (reflect padding of
(n_fft - hop) / 2, no centering), so frame t of a recording's STFT is what the head's frame t
is trained toward, and T frames give T * hop samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from model.mel import MelSettings


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the generator; stored in every vocoder checkpoint."""

    dim: int  # channels of the ConvNeXt blocks
    intermediate: int  # channels inside each block's pointwise MLP
    layers: int  # ConvNeXt blocks
    kernel: int  # depthwise kernel of each block, frames (odd)


def hann_window(settings: MelSettings) -> torch.Tensor:
    """The analysis window of model/mel.py: periodic Hann of win_length, zero-padded to n_fft
    around its centre (what torch.stft does with a shorter window)."""
    window = torch.hann_window(settings.win_length, periodic=True, dtype=torch.float64)
    left = (settings.n_fft - settings.win_length) // 2
    return nn.functional.pad(window, (left, settings.n_fft - settings.win_length - left))


def analysis_pad(settings: MelSettings) -> int:
    """Samples of reflect padding on each side: frame t then covers [t*hop - pad, t*hop - pad + n_fft)."""
    return (settings.n_fft - settings.hop_length) // 2


def stft(wave: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    """wave [B, samples] -> complex STFT [B, bins, frames], framed as model/mel.py frames the mel
    (frames = samples // hop)."""
    pad = analysis_pad(settings)
    padded = nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return torch.stft(
        padded,
        settings.n_fft,
        settings.hop_length,
        window=hann_window(settings).to(wave.dtype).to(wave.device),
        center=False,
        return_complex=True,
    )


class InverseSTFT(nn.Module):
    """Complex spectrum [B, bins, frames] -> wave [B, frames * hop], the exact inverse of `stft`:
    inverse real FFT per frame, synthesis window, overlap-add, division by the summed squared
    window."""

    def __init__(self, settings: MelSettings) -> None:
        super().__init__()
        self.n_fft = settings.n_fft
        self.hop = settings.hop_length
        self.pad = analysis_pad(settings)
        self.register_buffer("window", hann_window(settings).float(), persistent=False)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames as rows [B, T, n_fft] -> [B, (T - 1) * hop + n_fft]."""
        batch, count = frames.size(0), frames.size(1)
        length = (count - 1) * self.hop + self.n_fft
        if self.n_fft % self.hop:
            out = nn.functional.fold(
                frames.transpose(1, 2), output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop)
            )
            return out.reshape(batch, length)
        # n_fft = R hops: frame t's r-th hop-long piece lands in output block t + r. R shifted
        # sums of contiguous [B, T, hop] rows cost a fraction of fold's general gather on a CPU.
        pieces = self.n_fft // self.hop
        split = frames.reshape(batch, count, pieces, self.hop)
        blocks = frames.new_zeros(batch, count + pieces - 1, self.hop)
        for r in range(pieces):
            blocks[:, r : r + count] += split[:, :, r]
        return blocks.reshape(batch, length)

    def inverse_envelope(self, count: int) -> torch.Tensor:
        """1 / the summed squared window over `count` frames, cropped as `forward` crops: [count * hop]."""
        squared = self.window.square().expand(1, count, self.n_fft)
        envelope = self._overlap_add(squared)[0, self.pad : self.pad + count * self.hop]
        return 1.0 / envelope.clamp_min(1e-8)

    def forward(self, spectrum: torch.Tensor, inverse_envelope: torch.Tensor | None = None) -> torch.Tensor:
        """`inverse_envelope`: `inverse_envelope(frames)`, passed in by a caller that inverts
        many spectra of one length."""
        count = spectrum.size(-1)
        if inverse_envelope is None:
            inverse_envelope = self.inverse_envelope(count)
        frames = torch.fft.irfft(spectrum.transpose(1, 2), n=self.n_fft, dim=-1) * self.window
        return self._overlap_add(frames)[:, self.pad : self.pad + count * self.hop] * inverse_envelope


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over frames, LayerNorm, pointwise MLP, learned per-channel scale, residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, dim, frames]
        y = self.depthwise(x).transpose(1, 2)
        y = self.down(nn.functional.gelu(self.up(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class VocoderGenerator(nn.Module):
    """Natural-log mel [B, frames, n_mels] -> wave [B, frames * hop].

    The network predicts the STFT magnitude; the phase comes from `phase_iters` iterations of
    fast Griffin-Lim (Perraudin et al.: momentum) on that magnitude, started from zero phase
    so the same mel always gives the same wave.
    """

    def __init__(self, settings: MelSettings, config: GeneratorConfig, phase_iters: int, momentum: float) -> None:
        super().__init__()
        self.settings = settings
        self.config = config
        self.phase_iters = phase_iters
        self.momentum = momentum
        bins = settings.n_fft // 2 + 1
        self.embed = nn.Conv1d(settings.n_mels, config.dim, config.kernel, padding=config.kernel // 2)
        self.embed_norm = nn.LayerNorm(config.dim)
        # ConvNeXt's small initial residual scale keeps a deep stack near identity at the start.
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate, config.kernel, 1.0 / config.layers)
            for _ in range(config.layers)
        )
        self.out_norm = nn.LayerNorm(config.dim)
        # A correction of the filterbank inverse's log magnitude: zero at the start, so an
        # untrained generator is Griffin-Lim's starting spectrum.
        self.head = nn.Linear(config.dim, bins)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        filters = torchaudio.functional.melscale_fbanks(
            bins, settings.fmin, settings.fmax, settings.n_mels, settings.sample_rate, norm="slaney", mel_scale="slaney"
        )  # [bins, n_mels]
        self.register_buffer("inverse_filters", torch.linalg.pinv(filters.double()).float(), persistent=False)
        self.register_buffer("window", hann_window(settings).float(), persistent=False)
        self.istft = InverseSTFT(settings)

    def log_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [B, frames, n_mels] -> natural-log STFT magnitude [B, bins, frames]."""
        floor = math.log(self.settings.log_clamp)
        prior = (log_mel.exp() @ self.inverse_filters).clamp_min(self.settings.log_clamp).log()
        x = self.embed(log_mel.clamp_min(floor).transpose(1, 2))
        x = self.embed_norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        correction = self.head(self.out_norm(x.transpose(1, 2)))
        # The clamp bounds exp(): an untrained or diverging head cannot overflow the magnitude.
        return (prior + correction).clamp(floor, math.log(1e3)).transpose(1, 2)

    def _stft(self, wave: torch.Tensor) -> torch.Tensor:
        pad = analysis_pad(self.settings)
        padded = nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        return torch.stft(
            padded, self.settings.n_fft, self.settings.hop_length, window=self.window, center=False, return_complex=True
        )

    def phase_from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitude [B, bins, frames] -> wave [B, frames * hop] by fast Griffin-Lim."""
        spectrum = torch.complex(magnitude, torch.zeros_like(magnitude))
        previous = torch.zeros_like(spectrum)
        inverse_envelope = self.istft.inverse_envelope(magnitude.size(-1))
        for _ in range(self.phase_iters):
            rebuilt = self._stft(self.istft(spectrum, inverse_envelope))
            accelerated = rebuilt - previous * (self.momentum / (1 + self.momentum))
            # Real scale times complex: cheaper than a complex division on a CPU.
            spectrum = accelerated * (magnitude / (accelerated.abs() + 1e-16))
            previous = rebuilt
        return self.istft(spectrum, inverse_envelope)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.phase_from_magnitude(self.log_magnitude(log_mel).exp())
