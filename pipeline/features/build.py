"""One precompute run as a small object with named steps, in the order they run: text and
tokens, plan (fingerprint, resume a partial store), extract audio features, align, finish the
store (split and statistics), report. What each step produces is described in the
`precompute` command's help (pipeline/precompute.py) and docs/corpus.md.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import torch
import torchaudio

from model.text import build_symbol_table, encode
from pipeline.config import AlignConfig, FeaturesConfig
from pipeline.features.aligner_training import Alignment, Corpus, align_corpus
from pipeline.features.boundaries import corpus_accuracy
from pipeline.features.extraction import extract_features, mel_settings
from pipeline.features.fingerprint import features_record, fingerprint
from pipeline.features.review import alignment_figures
from pipeline.features.split import DROPPED, SPLIT_NAMES, TRAIN, UNSEEN, VAL, split_corpus
from pipeline.features.store import FeatureWriter
from pipeline.features.symbols import check_frames, separator_ids, text_symbols


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
    return FeatureBuild(manifest_path, out, cfg, acfg, progress).run(figures)


class FeatureBuild:
    """The steps of one features build, in order; each step leaves its results on the object
    for the next (see `run`)."""

    def __init__(self, manifest_path: Path, out: Path, cfg: FeaturesConfig, acfg: AlignConfig, progress: bool) -> None:
        self.t0 = time.perf_counter()
        self.manifest_path, self.out, self.cfg, self.acfg, self.progress = manifest_path, out, cfg, acfg, progress
        self.manifest = pd.read_parquet(manifest_path).reset_index(drop=True)
        if self.manifest.empty:
            raise ValueError(f"{manifest_path}: the manifest has no rows; see reports/rejected.csv")
        self.ids: list[str] = self.manifest["id"].tolist()

    def run(self, figures: Path | None = None) -> dict[str, Any]:
        """Every step; returns the report. Alignment figures go to `figures` when given."""
        self.text_and_tokens()
        self.plan()
        self.extract_audio()
        self.align()
        if figures is not None:
            alignment_figures(figures, self.aligned, self.ids, self.symbols, self.acfg.figures)
        self.finish()
        return self.report()

    def text_and_tokens(self) -> None:
        """Symbols, the symbol table and token ids of every utterance, and its split (before any
        audio, so that a frontend error costs nothing)."""
        cfg = self.cfg
        self.symbols = text_symbols(self.manifest, cfg.frontend)
        self.table = build_symbol_table(self.symbols)
        self.tokens = [encode(s, self.table) for s in self.symbols]
        # A manifest without the column has no held-out rows (validate writes it only when some are).
        unseen = self.manifest["unseen"].tolist() if "unseen" in self.manifest.columns else None
        listed = self.manifest["validation"].tolist() if "validation" in self.manifest.columns else None
        self.splits = split_corpus(
            self.ids, self.manifest["speaker"].tolist(), cfg.val_share, cfg.split_salt, unseen, listed
        )

    def plan(self) -> None:
        """Open the partial store for these inputs: resumed when its fingerprint matches."""
        self.key = fingerprint(self.cfg, self.manifest_path)
        self.writer = FeatureWriter(self.out, self.key, self.cfg.n_mels, self.cfg.chunk_frames)

    def extract_audio(self) -> None:
        """Mels of every utterance not yet in the store; then check each has frames for its tokens."""
        self.resumed = extract_features(self.writer, self.manifest, self.tokens, self.splits, self.cfg, self.progress)
        self.features_seconds = time.perf_counter() - self.t0
        self.frames = np.asarray(self.writer.ledger.frames)
        check_frames(self.ids, self.symbols, self.frames)

    def align(self) -> None:
        """Durations, scores and flags from the aligner (trained or cached); flagged utterances
        leave the split when align.drop_flagged; word-boundary accuracy against references."""
        cfg, acfg, writer = self.cfg, self.acfg, self.writer
        mean, std, _ = writer.stats(exclude=[])
        corpus = Corpus(writer.reader(), self.frames, len(self.table), separator_ids(self.table), mean, std)
        self.aligned: Alignment = align_corpus(corpus, acfg, self.key, self.out.parent / "aligner_cache", self.progress)
        self.dropped_train: list[int] = []
        if acfg.drop_flagged:
            flagged = self.aligned.flagged
            self.dropped_train = np.flatnonzero(flagged & (self.splits == TRAIN)).tolist()
            self.splits = np.where(flagged, DROPPED, self.splits).astype(np.int8)
        self.accuracy = corpus_accuracy(
            self.ids,
            [Path(a).parent.parent for a in self.manifest["audio"]],
            self.manifest["normalized"].tolist(),
            self.manifest["language"].tolist(),
            self.symbols,
            self.aligned.durations,
            np.asarray(writer.ledger.trim_start),
            cfg.hop_length / cfg.sample_rate,
        )

    def finish(self) -> None:
        """Finalize the store: per-utterance arrays, durations, and the attributes (symbols,
        split names, settings, train-set mel statistics, library versions)."""
        manifest, aligned = self.manifest, self.aligned
        mean, std, self.train_frames = self.writer.stats(exclude=self.dropped_train)
        self.speakers = sorted(manifest["speaker"].unique().tolist())
        self.languages = sorted(manifest["language"].unique().tolist())
        self.writer.finalize(
            {
                "speaker": manifest["speaker"].map(self.speakers.index).to_numpy(np.int32),
                "language": manifest["language"].map(self.languages.index).to_numpy(np.int32),
                "split": self.splits,
                "align_score": aligned.scores.astype(np.float32),
                "align_flagged": aligned.flagged,
            },
            {"durations": np.concatenate(aligned.durations).astype(np.int32)},
            self._attributes(mean, std),
        )

    def _attributes(self, mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
        return {
            "symbols": self.table,
            "frontend": self.cfg.frontend,
            "speakers": self.speakers,
            "languages": self.languages,
            "split_names": list(SPLIT_NAMES),
            "mel": dataclasses.asdict(mel_settings(self.cfg)),
            "features": features_record(self.cfg),
            "align": dataclasses.asdict(self.acfg),
            "texts": self.manifest["normalized"].tolist(),
            "mel_mean": mean.tolist(),
            "mel_std": std.tolist(),
            "train_frames": int(self.train_frames),
            "versions": {
                "torch": torch.__version__,
                "torchaudio": torchaudio.__version__,
                "librosa": librosa.__version__,
            },
        }

    def report(self) -> dict[str, Any]:
        """What the run did: counts, split sizes, throughput and the aligner's results."""
        ids, splits, frames, aligned = self.ids, self.splits, self.frames, self.aligned
        audio_seconds = float(frames.sum()) * self.cfg.hop_length / self.cfg.sample_rate
        new = len(ids) - self.resumed
        return {
            "utterances": len(ids),
            "train": int((splits == TRAIN).sum()),
            "val": int((splits == VAL).sum()),
            "dropped": int((splits == DROPPED).sum()),
            **({"unseen": int((splits == UNSEEN).sum())} if (splits == UNSEEN).any() else {}),
            "frames": int(frames.sum()),
            "hours": round(audio_seconds / 3600, 4),
            "symbols": len(self.table),
            "speakers": len(self.speakers),
            "resumed_utterances": self.resumed,
            "seconds": round(time.perf_counter() - self.t0, 2),
            "features_seconds": round(self.features_seconds, 2),
            "utterances_per_second": round(new / self.features_seconds, 2),
            "audio_seconds_per_second": round(audio_seconds * new / len(ids) / self.features_seconds, 1),
            "align": {
                "trained": aligned.trained,
                "train_seconds": round(aligned.train_seconds, 2),
                "extract_seconds": round(aligned.extract_seconds, 2),
                "final_loss": round(aligned.final_loss, 4),
                "score_median": round(float(np.median(aligned.scores)), 4),
                "score_threshold": round(aligned.threshold, 4),
                "flagged": int(aligned.flagged.sum()),
                "flagged_ids": [ids[i] for i in np.flatnonzero(aligned.flagged)],
                **self.accuracy,
            },
        }
