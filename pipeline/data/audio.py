"""Per-file audio facts the validate stage judges: readable, complete, finite, shape, level,
clipping, DC offset, silence."""

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


# Streaming writers put these in the data chunk's size while recording and may never fix
# them up: they mean "length unknown", not a length.
_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)

# Frames per block when decoding what precedes a decoder error (the count is exact to this).
_SALVAGE_BLOCK = 1024

# The level facts a file without usable samples has none of.
_LEVEL_FACTS = ("peak", "clip_share", "lead_silence", "trail_silence", "silence_share", "dc_offset")


def riff_declared_frames(path: Path) -> int | None:
    """Frames the `data` chunk of a RIFF/WAVE header declares, or None (not a RIFF wav, or a
    placeholder size). Read from the bytes because libsndfile quietly shrinks the count of a
    truncated wav to what the file holds, so soundfile's `frames` cannot reveal the loss."""
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while len(chunk := f.read(8)) == 8:
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"fmt ":
                block_align = int.from_bytes(f.read(size)[12:14], "little")
                f.seek(size & 1, 1)
            elif name == b"data":
                return size // block_align if block_align and size not in _PLACEHOLDER_SIZES else None
            else:
                f.seek(size + (size & 1), 1)
    return None


def decode_audio(path: Path) -> tuple[np.ndarray, int, int | None]:
    """Every frame that decodes, as float32 [samples, channels]; the sample rate; the frames the
    header declares (None when it declares none).

    A decoder error after some frames keeps those (a cut-off flac fails mid-stream), so the
    caller can name the loss: the file is decoded again a small block at a time, up to the
    error. An error before any frame is raised (the file is unreadable).
    """
    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        declared = riff_declared_frames(path) if f.format == "WAV" else (f.frames if f.frames > 0 else None)
        try:
            return f.read(dtype="float32", always_2d=True), sr, declared
        except RuntimeError:  # soundfile's decoder errors are RuntimeErrors
            f.seek(0)
            blocks: list[np.ndarray] = []
            try:
                blocks.extend(f.blocks(blocksize=_SALVAGE_BLOCK, dtype="float32", always_2d=True))
            except RuntimeError:
                if not blocks:
                    raise
    return np.concatenate(blocks), sr, declared


def silence_offset(mono: np.ndarray, frame_length: int, hop_length: int, top_db: float) -> float:
    """The DC offset of a mono signal: the median level (mean) of its quiet frames, those more
    than `top_db` below its loudest frame; the whole signal's mean when no frame is that quiet
    (a file of speech from end to end has no silence to read an offset from, and no silence for
    an offset to keep from being trimmed, while one frame of speech can sit far off zero).

    Not the whole file's mean: speech need not average to zero (a voice's waveform is lopsided),
    so subtracting the mean of speech and silence together leaves the silence at minus the
    speech's share, lifted above the trim's threshold; the quiet frames sit at the offset
    itself, so subtracting their level makes the silence silent again. Not a high-pass filter
    either: it would reshape the speech's lowest frequencies and ring where the file starts,
    whereas a constant removed gives the features of the same file without the offset. A
    frame's loudness is measured about its own mean (its standard deviation), which an offset
    does not move, so the quiet frames are found before the offset is known.
    """
    if len(mono) < frame_length:
        frames = mono[np.newaxis, :]
    else:
        frames = np.lib.stride_tricks.sliding_window_view(mono, frame_length)[::hop_length]
    levels = frames.mean(axis=1, dtype=np.float64)
    loudness = frames.std(axis=1)  # in float32: its temporary is as large as the trim's own frames
    quiet = loudness <= loudness.max() * 10 ** (-top_db / 20)
    if not quiet.any():
        return float(mono.mean(dtype=np.float64))
    return float(np.median(levels[quiet]))


def dc_to_remove(dc_offset: float, peak: float, cfg: ValidateConfig) -> float:
    """The DC offset precompute subtracts from a file: its measured offset when that exceeds
    `cfg.max_dc_offset` of the file's `peak`, else 0.0 (left alone, so files without the fault
    keep their exact features). Relative to the peak because what an offset spoils (the
    silence trim, the lowest mel channel) is judged against the file's own level: 0.06 is a
    fault in a file peaking at 0.5 and nothing in a float file peaking at 20. The one place
    the threshold is applied; validate records the result in the manifest's `dc_correction`."""
    return dc_offset if abs(dc_offset) > cfg.max_dc_offset * peak else 0.0


def missing_facts(error: str) -> dict[str, Any]:
    """The facts of a file there is nothing to measure of: every fact empty, `status` missing,
    `error` saying why."""
    return {
        "status": "missing",
        "error": error,
        "channels": np.nan,
        "sample_rate": np.nan,
        "duration": np.nan,
        "frames": np.nan,
        "declared_frames": np.nan,
        "missing_frames": np.nan,
        "non_finite": np.nan,
        **dict.fromkeys(_LEVEL_FACTS, np.nan),
    }


def audio_facts(path: str | Path, cfg: ValidateConfig) -> dict[str, Any]:
    """Facts about one file. `status` is ok, missing, unreadable or empty; `error` says why.

    Beside them: `frames` decoded and `missing_frames` that the header declares beyond them
    (a truncated file), and `non_finite` samples (NaN/inf: no level fact of such a file means
    anything, so they are left empty and the file is named for its real fault, not "silent").
    """
    path = Path(path)
    if not path.is_file():
        # A folder in the file's place is no lost file: "does not exist" would send the user
        # looking for one.
        return missing_facts(f"{path} is a folder, not a file" if path.is_dir() else f"{path} does not exist")
    facts = {**missing_facts(""), "status": "ok"}
    try:
        data, sr, declared = decode_audio(path)
    except Exception as e:  # soundfile raises several types for corrupt files
        return {**facts, "status": "unreadable", "error": f"{path}: {e}"}
    n = data.shape[0]
    facts["frames"], facts["declared_frames"] = n, declared if declared is not None else n
    facts["missing_frames"] = max(0, facts["declared_frames"] - n)
    if n == 0:
        return {**facts, "status": "empty", "error": f"{path} has no samples", "sample_rate": sr}
    facts.update(channels=data.shape[1], sample_rate=sr, duration=n / sr)
    facts["non_finite"] = int(data.size - np.count_nonzero(np.isfinite(data)))
    if facts["non_finite"]:
        return facts
    return {**facts, **_level_facts(data, sr, cfg)}


def _level_facts(data: np.ndarray, sr: int, cfg: ValidateConfig) -> dict[str, float]:
    """Peak, clipping, DC offset and leading/trailing silence of finite samples.

    Silence is measured on the mono mix: frames (`cfg.silence_frame_length` samples, every
    `cfg.silence_hop_length`) more than `cfg.silence_top_db` below the peak at the start and
    end of the file, after removing the DC offset precompute will remove (an offset keeps
    every frame above the threshold). The offset is the level of the same quiet frames
    (`silence_offset`). Clipping counts samples at `clip_level` of full scale,
    or of the file's own peak when that is above `cfg.max_peak`: a float file far over full
    scale was not clipped at 1.0 (it is a level to rescale), though it may be clipped at its
    own ceiling.
    """
    mono = data.mean(axis=1)
    peak = float(np.abs(data).max())
    dc_offset = silence_offset(mono, cfg.silence_frame_length, cfg.silence_hop_length, cfg.silence_top_db)
    remove = dc_to_remove(dc_offset, peak, cfg)
    if remove:
        mono = mono - np.float32(remove)
    if bool(np.any(mono)) if remove else peak > 0:
        _, (start, end) = librosa.effects.trim(
            mono, top_db=cfg.silence_top_db, frame_length=cfg.silence_frame_length, hop_length=cfg.silence_hop_length
        )
    else:
        start, end = 0, 0
    lead, trail = start / sr, (len(mono) - end) / sr
    ceiling = peak if peak > cfg.max_peak else 1.0
    return {
        "peak": peak,
        "clip_share": float((np.abs(data) >= cfg.clip_level * ceiling).mean()),
        "lead_silence": lead,
        "trail_silence": trail,
        "silence_share": min(1.0, (lead + trail) / (len(mono) / sr)),
        "dc_offset": dc_offset,
    }


def load_waveform(
    path: str,
    target_sr: int,
    trim_top_db: float,
    peak: float,
    frame_length: int = IMPLICIT_TRIM_FRAMES["trim_frame_length"],
    hop_length: int = IMPLICIT_TRIM_FRAMES["trim_hop_length"],
    dc_offset: float = 0.0,
) -> tuple[torch.Tensor, float]:
    """Read audio -> mono float32 at target_sr, DC-corrected, silence-trimmed, peak-normalized.

    `dc_offset` is subtracted from the mono mix before anything else (the manifest's
    `dc_correction`, the level of the file's silence: an offset keeps every frame above the
    trim's threshold and lifts the lowest mel channel); 0.0 leaves the samples untouched, so a
    file without the fault gives the same bytes as before. The trim measures frames of `frame_length` samples every
    `hop_length` (params features.trim_frame_length/trim_hop_length; the defaults are what
    settings recorded before those params existed mean). Returns the waveform and the seconds
    trimmed from its start (to map timings back).
    """
    import torch  # lazily: the validate stage reads audio facts from this module without torch
    import torchaudio

    data, sr = read_audio(path)
    mono = data.mean(axis=1)
    if dc_offset:
        mono = mono - np.float32(dc_offset)
    wave = torch.from_numpy(mono)
    if sr != target_sr:
        wave = torchaudio.functional.resample(wave, sr, target_sr)
    y = wave.numpy()
    _, (start, end) = librosa.effects.trim(y, top_db=trim_top_db, frame_length=frame_length, hop_length=hop_length)
    y = y[start:end]
    m = float(np.abs(y).max()) if len(y) else 0.0
    if m > 0:
        y = y * (peak / m)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), start / target_sr
