"""16-bit PCM WAV bytes, whole or as a stream whose length is not known when it starts."""

from __future__ import annotations

import struct

import numpy as np

# The data size a streamed WAV's header declares: the largest a RIFF file can hold. Browsers and
# players read such a file to its actual end; no other length can be written before the audio
# exists.
STREAMED_SIZE = 0xFFFFFFFF - 36


def header(sample_rate: int, data_bytes: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV holding `data_bytes` bytes of samples."""
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF)),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16),
            b"data",
            struct.pack("<I", data_bytes),
        ]
    )


def pcm16(wave: np.ndarray) -> bytes:
    """float samples in [-1, 1] (clipped beyond) -> little-endian 16-bit PCM."""
    return (np.clip(wave, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """A whole WAV file of `wave`."""
    data = pcm16(wave)
    return header(sample_rate, len(data)) + data
