"""Audio -> log-mel for every manifest row, in parallel worker processes, appended to the
resumable partial store a batch at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from model.mel import LogMel, MelSettings
from pipeline.common.runtime import process_pool, worker_count
from pipeline.config import FeaturesConfig
from pipeline.data.audio import load_waveform
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureWriter

BATCH = 32  # utterances appended at a time: the resume point
WINDOW = 16 * BATCH  # utterances in flight at most

_MEL: LogMel | None = None  # one per worker process, built by the pool initializer

# id, path, sr, top_db, peak, trim frame, trim hop, DC offset to subtract (the manifest's dc_correction)
AudioJob = tuple[str, str, int, float, float, int, int, float]


def mel_settings(cfg: FeaturesConfig) -> MelSettings:
    """The mel settings part of the features config."""
    names = {f.name for f in dataclasses.fields(MelSettings)}
    return MelSettings(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in names})


def _init_worker(settings: MelSettings) -> None:
    global _MEL
    torch.set_num_threads(1)  # parallelism comes from processes; threads would oversubscribe
    _MEL = LogMel(settings)


def _audio_job(args: AudioJob) -> tuple[str, np.ndarray, float]:
    assert _MEL is not None
    return _extract(args, _MEL)


def _extract(args: AudioJob, to_mel: LogMel) -> tuple[str, np.ndarray, float]:
    utt_id, path, sr, top_db, peak, frame_length, hop_length, dc_offset = args
    wave, trim_start = load_waveform(path, sr, top_db, peak, frame_length, hop_length, dc_offset)
    with torch.no_grad():
        mel = to_mel(wave).numpy()
    return utt_id, mel, trim_start


MelMap = Callable[[Iterable[AudioJob]], Iterator[tuple[str, np.ndarray, float]]]


@contextmanager
def _mel_map(settings: MelSettings, workers: int) -> Iterator[MelMap]:
    """A function from jobs to (id, mel, trim start) in job order: worker processes, or, for one
    worker, this process itself (no pool to start and no second JIT warm-up of librosa)."""
    if workers == 1:
        to_mel = LogMel(settings)
        yield lambda jobs: (_extract(job, to_mel) for job in jobs)
        return
    with process_pool(
        workers, initializer=_init_worker, initargs=(settings,), preload=["pipeline.features.extraction"]
    ) as pool:
        yield lambda jobs: pool.imap(_audio_job, jobs, chunksize=4)


def _job(utt_id: str, path: str, cfg: FeaturesConfig, dc_offset: float) -> AudioJob:
    return (
        utt_id,
        path,
        cfg.sample_rate,
        cfg.trim_top_db,
        cfg.peak_norm,
        cfg.trim_frame_length,
        cfg.trim_hop_length,
        dc_offset,
    )


def dc_corrections(manifest: pd.DataFrame) -> list[float]:
    """The DC offset to subtract from each row's audio: what validate decided (the manifest's
    `dc_correction`, 0.0 for a file without the fault). A manifest without the column (no
    row had an offset, or it was written before validate measured them) means none."""
    if "dc_correction" not in manifest.columns:
        return [0.0] * len(manifest)
    return [float(v) for v in manifest["dc_correction"]]


def extract_features(
    writer: FeatureWriter,
    manifest: pd.DataFrame,
    tokens: list[list[int]],
    splits: np.ndarray,
    cfg: FeaturesConfig,
    progress: bool,
) -> int:
    """Mels for every manifest row not yet in the store, in parallel. Returns how many were
    already there (resumed).

    Results stream in order while the workers keep going, and are appended every BATCH
    utterances (the resume point); a window of WINDOW utterances at a time bounds how many
    finished mels can wait in memory.
    """
    ids = manifest["id"].tolist()
    done = writer.done
    todo = [i for i, utt_id in enumerate(ids) if utt_id not in done]
    audio = manifest["audio"].tolist()
    dc = dc_corrections(manifest)
    with _mel_map(mel_settings(cfg), worker_count(cfg.workers)) as mels:
        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc="features", unit="utt", disable=not progress)
        for w in range(0, len(todo), WINDOW):
            rows = todo[w : w + WINDOW]
            jobs = [_job(ids[i], audio[i], cfg, dc[i]) for i in rows]
            pending: list[dict[str, Any]] = []
            for i, (utt_id, mel, trim_start) in zip(rows, mels(jobs)):
                pending.append(
                    {
                        "id": utt_id,
                        "mel": mel,
                        "tokens": tokens[i],
                        "trim_start": trim_start,
                        "is_train": splits[i] == TRAIN,
                    }
                )
                if len(pending) == BATCH:
                    writer.append(pending)
                    bar.update(len(pending))
                    pending = []
            writer.append(pending)
            bar.update(len(pending))
        bar.close()
    return len(ids) - len(todo)
