"""The `precompute` stage: manifest -> data/features.zarr (log-mels, token ids, split, stats).

Text: normalized text -> phonemes (espeak-ng) or characters -> ids with a stored symbol
table. Audio: mono, resampled to features.sample_rate, trimmed, peak-normalized, log-mel.
Batches are processed in parallel and appended to a resumable partial store; a killed run
picks up at its last finished batch. Memory holds one batch, not the corpus.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import torch
import torchaudio
from tqdm import tqdm

from model.mel import LogMel, MelSettings
from model.text import FrontendError, build_symbol_table, encode, to_characters, to_phonemes
from pipeline.atomic import worker_count, write_json
from pipeline.audio_facts import read_audio
from pipeline.config import ConfigError, FeaturesConfig, features_config, load_params
from pipeline.feature_store import FORMAT_VERSION, FeatureWriter
from pipeline.split import SPLIT_NAMES, TRAIN, split_of

BATCH = 32  # utterances per parallel batch and per resume point

_MEL: LogMel | None = None  # one per worker process, built by the pool initializer


def mel_settings(cfg: FeaturesConfig) -> MelSettings:
    """The mel settings part of the features config."""
    names = {f.name for f in dataclasses.fields(MelSettings)}
    return MelSettings(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in names})


def load_waveform(path: str, target_sr: int, trim_top_db: float, peak: float) -> tuple[torch.Tensor, float]:
    """Read audio -> mono float32 at target_sr, silence-trimmed, peak-normalized.

    Returns the waveform and the seconds trimmed from its start (to map timings back).
    """
    data, sr = read_audio(path)
    wave = torch.from_numpy(data.mean(axis=1))
    if sr != target_sr:
        wave = torchaudio.functional.resample(wave, sr, target_sr)
    y = wave.numpy()
    _, (start, end) = librosa.effects.trim(y, top_db=trim_top_db, frame_length=1024, hop_length=256)
    y = y[start:end]
    m = float(np.abs(y).max()) if len(y) else 0.0
    if m > 0:
        y = y * (peak / m)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), start / target_sr


def _init_worker(settings: MelSettings) -> None:
    global _MEL
    torch.set_num_threads(1)  # parallelism comes from processes; threads would oversubscribe
    _MEL = LogMel(settings)


def _audio_job(args: tuple[str, str, int, float, float]) -> tuple[str, np.ndarray, float]:
    utt_id, path, sr, top_db, peak = args
    assert _MEL is not None
    wave, trim_start = load_waveform(path, sr, top_db, peak)
    with torch.no_grad():
        mel = _MEL(wave).numpy()
    return utt_id, mel, trim_start


def text_symbols(manifest: pd.DataFrame, frontend: str) -> list[list[str]]:
    """Symbols for every manifest row, phonemized per language in one espeak-ng call each."""
    out: list[list[str] | None] = [None] * len(manifest)
    if frontend == "characters":
        return [to_characters(t) for t in manifest["normalized"]]
    for lang, group in manifest.groupby("language", sort=True):
        for pos, syms in zip(group.index, to_phonemes(group["normalized"].tolist(), str(lang))):
            out[pos] = syms
    empty = [manifest.loc[i, "id"] for i, s in enumerate(out) if not s]
    if empty:
        raise FrontendError(f"espeak-ng produced no phonemes for: {', '.join(empty[:10])}")
    return [s for s in out if s is not None]


def fingerprint(cfg: FeaturesConfig, manifest_path: Path) -> str:
    """Identifies a partial store's inputs: the features config, the manifest, the format."""
    h = hashlib.sha256()
    h.update(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode())
    h.update(manifest_path.read_bytes())
    h.update(str(FORMAT_VERSION).encode())
    return h.hexdigest()


def precompute(manifest_path: Path, out: Path, cfg: FeaturesConfig, progress: bool = True) -> dict[str, Any]:
    """Build features.zarr from the manifest; returns the report. Resumes a killed run."""
    t0 = time.perf_counter()
    manifest = pd.read_parquet(manifest_path).reset_index(drop=True)
    if manifest.empty:
        raise ValueError(f"{manifest_path}: the manifest has no rows; see reports/rejected.csv")
    symbols = text_symbols(manifest, cfg.frontend)
    table = build_symbol_table(symbols)
    ids = manifest["id"].tolist()
    splits = np.array([split_of(i, cfg.val_share, cfg.split_salt) for i in ids], dtype=np.int8)

    writer = FeatureWriter(out, fingerprint(cfg, manifest_path), cfg.n_mels, cfg.chunk_frames)
    done = writer.done
    todo = [i for i, utt_id in enumerate(ids) if utt_id not in done]
    resumed = len(ids) - len(todo)
    settings = mel_settings(cfg)
    with Pool(worker_count(cfg.workers), initializer=_init_worker, initargs=(settings,)) as pool:
        bar = tqdm(total=len(ids), initial=resumed, desc="precompute", unit="utt", disable=not progress)
        for b in range(0, len(todo), BATCH):
            rows = todo[b : b + BATCH]
            jobs = [(ids[i], manifest.loc[i, "audio"], cfg.sample_rate, cfg.trim_top_db, cfg.peak_norm) for i in rows]
            results = pool.map(_audio_job, jobs)
            writer.append(
                [
                    {
                        "id": utt_id,
                        "mel": mel,
                        "tokens": encode(symbols[i], table),
                        "trim_start": trim_start,
                        "is_train": splits[i] == TRAIN,
                    }
                    for i, (utt_id, mel, trim_start) in zip(rows, results)
                ]
            )
            bar.update(len(rows))
        bar.close()

    speakers = sorted(manifest["speaker"].unique().tolist())
    languages = sorted(manifest["language"].unique().tolist())
    frames = np.asarray(writer.ledger.frames)
    writer.finalize(
        ids,
        {
            "speaker": manifest["speaker"].map(speakers.index).to_numpy(np.int32),
            "language": manifest["language"].map(languages.index).to_numpy(np.int32),
            "split": splits,
        },
        {
            "symbols": table,
            "frontend": cfg.frontend,
            "speakers": speakers,
            "languages": languages,
            "split_names": list(SPLIT_NAMES),
            "mel": dataclasses.asdict(settings),
            "features": dataclasses.asdict(cfg),
            "texts": manifest["normalized"].tolist(),
            "versions": {"torch": torch.__version__, "torchaudio": torchaudio.__version__, "librosa": librosa.__version__},
        },
    )
    seconds = time.perf_counter() - t0
    audio_seconds = float(frames.sum()) * cfg.hop_length / cfg.sample_rate
    return {
        "utterances": len(ids),
        "train": int((splits == TRAIN).sum()),
        "val": int((splits != TRAIN).sum()),
        "frames": int(frames.sum()),
        "hours": round(audio_seconds / 3600, 4),
        "symbols": len(table),
        "speakers": len(speakers),
        "resumed_utterances": resumed,
        "seconds": round(seconds, 2),
        "utterances_per_second": round((len(ids) - resumed) / seconds, 2),
        "audio_seconds_per_second": round(audio_seconds * (len(ids) - resumed) / len(ids) / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the precompute stage."""
    ap = argparse.ArgumentParser(prog="hamgara precompute", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate")
    ap.add_argument("--out", default="data/features.zarr", help="features store to write")
    ap.add_argument("--report", default="reports/precompute.json", help="metrics file to write")
    args = ap.parse_args(argv)
    try:
        cfg = features_config(load_params(args.params))
        report = precompute(Path(args.manifest), Path(args.out), cfg)
    except (ConfigError, FrontendError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(args.report, report)
    print(
        f"precompute: {report['utterances']} utterances ({report['train']} train, {report['val']} val), "
        f"{report['hours'] * 60:.1f} min of audio, {report['symbols']} symbols, {report['seconds']} s "
        f"({report['audio_seconds_per_second']} s of audio per s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
