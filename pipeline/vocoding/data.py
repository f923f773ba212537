"""The vocoder's training data: each utterance's mel exactly as precompute stored it, and its
recording loaded exactly as precompute loaded it (same resampling, DC correction, trim and
peak normalization), cut to the mel's frames * hop samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from model.mel import MelSettings
from pipeline.data.audio import load_waveform, recorded_trim_frames
from pipeline.features.extraction import dc_corrections
from pipeline.features.split import TRAIN, VAL
from pipeline.features.store import FeatureStore


@dataclass(frozen=True)
class Utterance:
    """One recording: its id, mel [frames, n_mels] and wave [frames * hop]."""

    id: str
    mel: np.ndarray
    wave: np.ndarray


def store_mel_settings(store: FeatureStore) -> MelSettings:
    """The mel settings a features store was made with."""
    return MelSettings(**store.attrs["mel"])


def load_utterances(
    store: FeatureStore, manifest_path: Path, split: int, progress: bool, limit: int | None = None
) -> list[Utterance]:
    """The store's utterances of one split (TRAIN or VAL), at most `limit` of them, with their
    audio. A recording whose length no longer matches its stored mel (re-recorded, or the
    store is from other settings) is a ValueError naming it: precompute must run again."""
    settings = store_mel_settings(store)
    features = store.attrs["features"]
    frame_length, hop_length = recorded_trim_frames(features)
    manifest = pd.read_parquet(manifest_path)
    rows = {utt_id: i for i, utt_id in enumerate(manifest["id"])}
    audio, dc = manifest["audio"].tolist(), dc_corrections(manifest)
    splits = store.array("split")
    chosen = [i for i in range(len(store)) if splits[i] == split][:limit]
    out = []
    for i in tqdm(
        chosen,
        desc=f"vocoder: {'training' if split == TRAIN else 'validation'} audio",
        unit="utt",
        disable=not progress,
    ):
        utt_id = store.ids[i]
        if utt_id not in rows:
            raise ValueError(
                f"{manifest_path}: no row for {utt_id!r}, which {store.path} holds: rerun dvc repro precompute"
            )
        row = rows[utt_id]
        wave, _ = load_waveform(
            audio[row],
            settings.sample_rate,
            features["trim_top_db"],
            features["peak_norm"],
            frame_length,
            hop_length,
            dc[row],
        )
        mel = store.mel(i)
        frames = wave.numel() // settings.hop_length
        if frames != mel.shape[0]:
            raise ValueError(
                f"{audio[row]} (row {manifest['line'].iloc[row] if 'line' in manifest else row + 1} of the manifest, id {utt_id}): "
                f"its audio gives {frames} mel frames, {store.path} holds {mel.shape[0]}: the recording or the settings "
                "changed since precompute; rerun dvc repro precompute"
            )
        out.append(Utterance(utt_id, mel.astype(np.float32), wave.numpy()[: frames * settings.hop_length]))
    return out


def draw_batch(
    utterances: list[Utterance], seed: int, step: int, batch_size: int, segment_frames: int, settings: MelSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Step `step`'s excerpts: [B, segment_frames, n_mels] mels and [B, segment_frames * hop]
    waves. The draw depends only on (seed, step), so a resumed run sees exactly the batches an
    uninterrupted one would. Utterances are drawn in proportion to their length (every frame
    equally likely); one shorter than a segment is padded with silence."""
    rng = np.random.default_rng([seed, step])
    lengths = np.array([u.mel.shape[0] for u in utterances], dtype=np.float64)
    picks = rng.choice(len(utterances), size=batch_size, p=lengths / lengths.sum())
    hop = settings.hop_length
    silence = math.log(settings.log_clamp)
    mels = np.full((batch_size, segment_frames, settings.n_mels), silence, dtype=np.float32)
    waves = np.zeros((batch_size, segment_frames * hop), dtype=np.float32)
    for b, k in enumerate(picks):
        u = utterances[k]
        start = int(rng.integers(0, max(u.mel.shape[0] - segment_frames, 0) + 1))
        mel = u.mel[start : start + segment_frames]
        mels[b, : mel.shape[0]] = mel
        wave = u.wave[start * hop : (start + mel.shape[0]) * hop]
        waves[b, : wave.shape[0]] = wave
    return mels, waves


__all__ = ["TRAIN", "VAL", "Utterance", "draw_batch", "load_utterances", "store_mel_settings"]
