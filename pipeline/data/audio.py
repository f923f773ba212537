"""Per-file audio facts the validate stage judges: readable, shape, level, clipping, silence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import librosa
import numpy as np
import soundfile as sf

from pipeline.config import ValidateConfig

if TYPE_CHECKING:
    import torch

# The trim's frame and hop before they became params (features.trim_frame_length and
# features.trim_hop_length): what stores and checkpoints that do not record them were built with.
IMPLICIT_TRIM_FRAMES = {"trim_frame_length": 1024, "trim_hop_length": 256}


def recorded_trim_frames(features: dict[str, Any]) -> tuple[int, int]:
    """The trim frame and hop lengths a store or checkpoint recorded in its `features` settings;
    one made before they were params recorded none and used the implicit values."""
    return tuple(features.get(k, v) for k, v in IMPLICIT_TRIM_FRAMES.items())  # type: ignore[return-value]


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 [samples, channels] and its sample rate."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(sr)


def audio_facts(path: str | Path, cfg: ValidateConfig) -> dict[str, Any]:
    """Facts about one file. `status` is ok, missing, unreadable or empty; `error` says why.

    Silence is measured on the mono mix: frames (`cfg.silence_frame_length` samples, every
    `cfg.silence_hop_length`) more than `cfg.silence_top_db` below the peak at the start and
    end of the file.
    """
    facts: dict[str, Any] = {
        "status": "ok",
        "error": "",
        "channels": np.nan,
        "sample_rate": np.nan,
        "duration": np.nan,
        "peak": np.nan,
        "clip_share": np.nan,
        "lead_silence": np.nan,
        "trail_silence": np.nan,
        "silence_share": np.nan,
    }
    path = Path(path)
    if not path.is_file():
        return {**facts, "status": "missing", "error": f"{path} does not exist"}
    try:
        data, sr = read_audio(path)
    except Exception as e:  # soundfile raises several types for corrupt files
        return {**facts, "status": "unreadable", "error": f"{path}: {e}"}
    if data.shape[0] == 0:
        return {**facts, "status": "empty", "error": f"{path} has no samples", "sample_rate": sr}
    mono = data.mean(axis=1)
    peak = float(np.abs(data).max())
    duration = data.shape[0] / sr
    if peak > 0:
        _, (start, end) = librosa.effects.trim(
            mono, top_db=cfg.silence_top_db, frame_length=cfg.silence_frame_length, hop_length=cfg.silence_hop_length
        )
    else:
        start, end = 0, 0
    lead = start / sr
    trail = (len(mono) - end) / sr
    return {
        **facts,
        "channels": data.shape[1],
        "sample_rate": sr,
        "duration": duration,
        "peak": peak,
        "clip_share": float((np.abs(data) >= cfg.clip_level).mean()),
        "lead_silence": lead,
        "trail_silence": trail,
        "silence_share": min(1.0, (lead + trail) / duration),
    }


def load_waveform(
    path: str,
    target_sr: int,
    trim_top_db: float,
    peak: float,
    frame_length: int = IMPLICIT_TRIM_FRAMES["trim_frame_length"],
    hop_length: int = IMPLICIT_TRIM_FRAMES["trim_hop_length"],
) -> tuple[torch.Tensor, float]:
    """Read audio -> mono float32 at target_sr, silence-trimmed, peak-normalized.

    The trim measures frames of `frame_length` samples every `hop_length` (params
    features.trim_frame_length/trim_hop_length; the defaults are what settings recorded
    before those params existed mean). Returns the waveform and the seconds trimmed from its
    start (to map timings back).
    """
    import torch  # lazily: the validate stage reads audio facts from this module without torch
    import torchaudio

    data, sr = read_audio(path)
    wave = torch.from_numpy(data.mean(axis=1))
    if sr != target_sr:
        wave = torchaudio.functional.resample(wave, sr, target_sr)
    y = wave.numpy()
    _, (start, end) = librosa.effects.trim(y, top_db=trim_top_db, frame_length=frame_length, hop_length=hop_length)
    y = y[start:end]
    m = float(np.abs(y).max()) if len(y) else 0.0
    if m > 0:
        y = y * (peak / m)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), start / target_sr
