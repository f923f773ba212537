"""The `precompute` stage: manifest -> data/features.zarr (log-mels, token ids, durations, split, stats).

Text: normalized text -> phonemes (espeak-ng) or characters -> ids with a stored symbol
table. Audio: mono, resampled to features.sample_rate, trimmed, peak-normalized, log-mel.
Batches are processed in parallel and appended to a resumable partial store; a killed run
picks up at its last finished batch. Memory holds one batch, not the corpus. Then the
aligner (model/aligner.py) is trained on the corpus, or loaded from its cache, and gives
every token a duration and every utterance an alignment score; outliers are flagged.
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
from pipeline.common.atomic import atomic_path, write_json
from pipeline.common.figures import alignment_figure
from pipeline.common.runtime import limit_heap_fragmentation, worker_count
from pipeline.common.stage import run_stage
from pipeline.config import AlignConfig, FeaturesConfig, align_config, features_config, load_params
from pipeline.data.audio import load_waveform
from pipeline.features.aligner_training import Alignment, Corpus, align_corpus
from pipeline.features.boundaries import corpus_accuracy
from pipeline.features.split import DROPPED, SPLIT_NAMES, TRAIN, VAL, split_of
from pipeline.features.store import FORMAT_VERSION, FeatureWriter

BATCH = 32  # utterances appended at a time: the resume point
WINDOW = 16 * BATCH  # utterances in flight at most

_MEL: LogMel | None = None  # one per worker process, built by the pool initializer


def mel_settings(cfg: FeaturesConfig) -> MelSettings:
    """The mel settings part of the features config."""
    names = {f.name for f in dataclasses.fields(MelSettings)}
    return MelSettings(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in names})


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
    """Identifies the features' inputs: the features config (less knobs that do not change
    the data), the manifest and the store format."""
    h = hashlib.sha256()
    relevant = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("workers", "chunk_frames")}
    h.update(json.dumps(relevant, sort_keys=True).encode())
    h.update(manifest_path.read_bytes())
    h.update(str(FORMAT_VERSION).encode())
    return h.hexdigest()


def _extract_features(
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
    with Pool(worker_count(cfg.workers), initializer=_init_worker, initargs=(mel_settings(cfg),)) as pool:
        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc="features", unit="utt", disable=not progress)
        for w in range(0, len(todo), WINDOW):
            rows = todo[w : w + WINDOW]
            jobs = [(ids[i], audio[i], cfg.sample_rate, cfg.trim_top_db, cfg.peak_norm) for i in rows]
            pending: list[dict[str, Any]] = []
            for i, (utt_id, mel, trim_start) in zip(rows, pool.imap(_audio_job, jobs, chunksize=4)):
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


def precompute(
    manifest_path: Path,
    out: Path,
    cfg: FeaturesConfig,
    acfg: AlignConfig,
    figures: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build features.zarr (mels, tokens, durations, scores) from the manifest; returns the
    report. Resumes a killed run; reuses a cached aligner when its inputs are unchanged."""
    t0 = time.perf_counter()
    manifest = pd.read_parquet(manifest_path).reset_index(drop=True)
    if manifest.empty:
        raise ValueError(f"{manifest_path}: the manifest has no rows; see reports/rejected.csv")
    symbols = text_symbols(manifest, cfg.frontend)
    table = build_symbol_table(symbols)
    tokens = [encode(s, table) for s in symbols]
    ids = manifest["id"].tolist()
    splits = np.array([split_of(i, cfg.val_share, cfg.split_salt) for i in ids], dtype=np.int8)

    key = fingerprint(cfg, manifest_path)
    writer = FeatureWriter(out, key, cfg.n_mels, cfg.chunk_frames)
    resumed = _extract_features(writer, manifest, tokens, splits, cfg, progress)
    features_seconds = time.perf_counter() - t0

    frames = np.asarray(writer.ledger.frames)
    too_fast = [ids[i] for i in range(len(ids)) if frames[i] < sum(s != " " for s in symbols[i])]
    if too_fast:
        raise ValueError(
            f"{len(too_fast)} utterance(s) have fewer mel frames than tokens, so no duration can give "
            f"each token a frame: {', '.join(too_fast[:10])}. Check their transcripts."
        )
    mean, std, _ = writer.stats(exclude=[])
    separators = frozenset(table.index(s) for s in (" ",) if s in table)
    corpus = Corpus(writer.reader(), frames, len(table), separators, mean, std)
    aligned = align_corpus(corpus, acfg, key, out.parent / "aligner_cache", progress)
    flagged = aligned.flagged
    dropped_train: list[int] = []
    if acfg.drop_flagged:
        dropped_train = np.flatnonzero(flagged & (splits == TRAIN)).tolist()
        splits = np.where(flagged, DROPPED, splits).astype(np.int8)
    mean, std, train_frames = writer.stats(exclude=dropped_train)

    accuracy = corpus_accuracy(
        ids,
        [Path(a).parent.parent for a in manifest["audio"]],
        manifest["normalized"].tolist(),
        manifest["language"].tolist(),
        symbols,
        aligned.durations,
        np.asarray(writer.ledger.trim_start),
        cfg.hop_length / cfg.sample_rate,
    )
    if figures is not None:
        _figures(figures, aligned, ids, symbols, acfg.figures)

    speakers = sorted(manifest["speaker"].unique().tolist())
    languages = sorted(manifest["language"].unique().tolist())
    settings = mel_settings(cfg)
    writer.finalize(
        {
            "speaker": manifest["speaker"].map(speakers.index).to_numpy(np.int32),
            "language": manifest["language"].map(languages.index).to_numpy(np.int32),
            "split": splits,
            "align_score": aligned.scores.astype(np.float32),
            "align_flagged": flagged,
        },
        {"durations": np.concatenate(aligned.durations).astype(np.int32)},
        {
            "symbols": table,
            "frontend": cfg.frontend,
            "speakers": speakers,
            "languages": languages,
            "split_names": list(SPLIT_NAMES),
            "mel": dataclasses.asdict(settings),
            "features": dataclasses.asdict(cfg),
            "align": dataclasses.asdict(acfg),
            "texts": manifest["normalized"].tolist(),
            "mel_mean": mean.tolist(),
            "mel_std": std.tolist(),
            "train_frames": int(train_frames),
            "versions": {
                "torch": torch.__version__,
                "torchaudio": torchaudio.__version__,
                "librosa": librosa.__version__,
            },
        },
    )
    seconds = time.perf_counter() - t0
    audio_seconds = float(frames.sum()) * cfg.hop_length / cfg.sample_rate
    new = len(ids) - resumed
    return {
        "utterances": len(ids),
        "train": int((splits == TRAIN).sum()),
        "val": int((splits == VAL).sum()),
        "dropped": int((splits == DROPPED).sum()),
        "frames": int(frames.sum()),
        "hours": round(audio_seconds / 3600, 4),
        "symbols": len(table),
        "speakers": len(speakers),
        "resumed_utterances": resumed,
        "seconds": round(seconds, 2),
        "features_seconds": round(features_seconds, 2),
        "utterances_per_second": round(new / features_seconds, 2),
        "audio_seconds_per_second": round(audio_seconds * new / len(ids) / features_seconds, 1),
        "align": {
            "trained": aligned.trained,
            "train_seconds": round(aligned.train_seconds, 2),
            "extract_seconds": round(aligned.extract_seconds, 2),
            "final_loss": round(aligned.final_loss, 4),
            "score_median": round(float(np.median(aligned.scores)), 4),
            "score_threshold": round(aligned.threshold, 4),
            "flagged": int(flagged.sum()),
            "flagged_ids": [ids[i] for i in np.flatnonzero(flagged)],
            **accuracy,
        },
    }


def _figures(folder: Path, aligned: Alignment, ids: list[str], symbols: list[list[str]], count: int) -> None:
    for i, soft in sorted(aligned.soft.items())[:count]:
        alignment_figure(
            folder / f"{ids[i]}.png",
            soft,
            aligned.durations[i],
            symbols[i],
            f"{ids[i]}: soft alignment, Viterbi path (cyan); score {aligned.scores[i]:.3f}",
        )


def write_flagged(store: Path, path: Path) -> None:
    """The aligner's flagged utterances, worst first, with score and transcript, for a person to check."""
    from pipeline.features.store import FeatureStore

    fs = FeatureStore(store)
    scores, flagged, split = fs.array("align_score"), fs.array("align_flagged"), fs.array("split")
    rows = [
        {
            "id": fs.ids[i],
            "score": round(float(scores[i]), 4),
            "split": SPLIT_NAMES[split[i]],
            "text": fs.attrs["texts"][i],
        }
        for i in np.flatnonzero(flagged)
    ]
    rows.sort(key=lambda r: -r["score"])
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=["id", "score", "split", "text"]).to_csv(tmp, index=False)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the precompute stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara precompute", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate")
    ap.add_argument("--out", default="data/features.zarr", help="features store to write")
    ap.add_argument("--report", default="reports/precompute.json", help="metrics file to write")
    ap.add_argument("--figures", default="reports/figures/alignment", help="folder for alignment figures")
    ap.add_argument("--flagged", default="reports/align_flagged.csv", help="list of utterances the aligner flagged")
    args = ap.parse_args(argv)
    return run_stage("precompute", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    limit_heap_fragmentation()
    params = load_params(args.params)
    report = precompute(
        Path(args.manifest), Path(args.out), features_config(params), align_config(params), Path(args.figures)
    )
    write_json(args.report, report)
    write_flagged(Path(args.out), Path(args.flagged))
    a = report["align"]
    print(
        f"aligner: {'trained' if a['trained'] else 'cached'}, {a['flagged']} utterance(s) flagged "
        f"(score > {a['score_threshold']}; list: {args.flagged})"
        + (
            f", word boundaries vs reference: median {a['word_boundary_median_ms']} ms, "
            f"{a['word_boundary_within_50ms']:.1%} within 50 ms"
            if "word_boundary_median_ms" in a
            else ""
        )
    )
    print(
        f"precompute: {report['utterances']} utterances ({report['train']} train, {report['val']} val), "
        f"{report['hours'] * 60:.1f} min of audio, {report['symbols']} symbols, {report['seconds']} s "
        f"({report['audio_seconds_per_second']} s of audio per s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
