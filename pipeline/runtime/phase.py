"""STFT magnitude -> waveform in numpy: fast Griffin-Lim, framed exactly as model/mel.py frames
the mel (reflect padding of (n_fft - hop) / 2, no centering, T frames <-> T * hop samples).

The same algorithm as the trained generator's phase reconstruction
(model/vocoder_generator.py `phase_from_magnitude`: Perraudin et al.'s momentum, zero initial
phase, so a mel always gives the same wave), in single precision, without torch. Arrays are
[frames, bins] here (the transpose of torch's layout) so each frame is a contiguous row.
"""

from __future__ import annotations

import numpy as np


class PhaseReconstruction:
    """Fast Griffin-Lim for one STFT configuration."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, iterations: int, momentum: float) -> None:
        self.n_fft = n_fft
        self.hop = hop_length
        self.pad = (n_fft - hop_length) // 2
        self.iterations = iterations
        self.momentum = momentum
        # model/vocoder_generator.py `hann_window`: periodic Hann of win_length, centred in n_fft.
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
        left = (n_fft - win_length) // 2
        self.window = np.pad(window, (left, n_fft - win_length - left)).astype(np.float32)

    def _overlap_add(self, frames: np.ndarray) -> np.ndarray:
        """Rows [T, n_fft] -> [(T - 1) * hop + n_fft]."""
        count = frames.shape[0]
        if self.n_fft % self.hop == 0:
            # n_fft = R hops: frame t's r-th hop-long piece lands in output block t + r.
            pieces = self.n_fft // self.hop
            split = frames.reshape(count, pieces, self.hop)
            blocks = np.zeros((count + pieces - 1, self.hop), dtype=frames.dtype)
            for r in range(pieces):
                blocks[r : r + count] += split[:, r]
            return blocks.reshape(-1)
        out = np.zeros((count - 1) * self.hop + self.n_fft, dtype=frames.dtype)
        for t in range(count):
            out[t * self.hop : t * self.hop + self.n_fft] += frames[t]
        return out

    def inverse_envelope(self, count: int) -> np.ndarray:
        """1 / the summed squared window over `count` frames, cropped to the wave: [count * hop]."""
        squared = np.broadcast_to(self.window**2, (count, self.n_fft))
        envelope = self._overlap_add(np.ascontiguousarray(squared))[self.pad : self.pad + count * self.hop]
        return (1.0 / np.maximum(envelope, 1e-8)).astype(np.float32)

    def stft(self, wave: np.ndarray) -> np.ndarray:
        """wave [samples] -> complex spectrum [samples // hop, bins]."""
        padded = np.pad(wave, self.pad, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop]
        return np.fft.rfft(frames * self.window, axis=-1)

    def istft(self, spectrum: np.ndarray, inverse_envelope: np.ndarray) -> np.ndarray:
        """Complex spectrum [T, bins] -> wave [T * hop]: the exact inverse of `stft`."""
        count = spectrum.shape[0]
        frames = np.fft.irfft(spectrum, n=self.n_fft, axis=-1) * self.window
        return self._overlap_add(frames)[self.pad : self.pad + count * self.hop] * inverse_envelope

    def __call__(self, magnitude: np.ndarray) -> np.ndarray:
        """Magnitude [T, bins] (float32) -> wave [T * hop] (float32)."""
        magnitude = magnitude.astype(np.float32, copy=False)
        spectrum = magnitude.astype(np.complex64)
        previous = np.zeros_like(spectrum)
        envelope = self.inverse_envelope(magnitude.shape[0])
        keep = np.float32(self.momentum / (1 + self.momentum))
        for _ in range(self.iterations):
            rebuilt = self.stft(self.istft(spectrum, envelope))
            accelerated = rebuilt - previous * keep
            spectrum = accelerated * (magnitude / (np.abs(accelerated) + np.float32(1e-16)))
            previous = rebuilt
        return self.istft(spectrum, envelope).astype(np.float32, copy=False)
