"""The data half of `hamgara doctor`: what validate and precompute reported, the features
store, and the checkpoint read against the store.

Rejections by reason, silence and clipping, the sample-rate mix, alignment-score outliers with
the ids to listen to, every chunk of the store decoding, symbol coverage, lengths against the
model's limit, mel statistics, and whether the checkpoint normalizes and reads text the way the
features were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.rejections import FIXES
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING, Check

# What to do about a checkpoint doctor cannot read (missing, cut short, not a checkpoint).
UNREADABLE_CHECKPOINT_FIX = (
    "train (dvc repro train) or pass --checkpoint a whole Hamgara checkpoint (models/best.pt or models/last.pt); "
    "a file cut short by a full disk or an interrupted copy must be copied again or retrained"
)


def check_validation(report: dict[str, Any] | None, max_rejected_share: float = 0.05) -> list[Check]:
    """Rejections by reason, sample-rate mix, clipping warnings (reports/validation.json)."""
    if report is None:
        return [
            Check("data", "validation report", PROBLEM, "reports/validation.json is missing", "run dvc repro validate")
        ]
    checks = []
    share, reasons = report["rejected_share"], report.get("rejected_by_reason", {})
    if report["rejected"] == 0:
        checks.append(Check("data", "rejected rows", OK, f"all {report['rows']} rows accepted"))
    else:
        worst = sorted(reasons.items(), key=lambda kv: -kv[1])
        evidence = f"{report['rejected']} of {report['rows']} rows rejected ({share:.1%}): " + ", ".join(
            f"{k} {v}" for k, v in worst
        )
        fix = "; ".join(f"{k}: {FIXES.get(k, 'see reports/rejected.csv')}" for k, _ in worst)
        checks.append(
            Check(
                "data",
                "rejected rows",
                PROBLEM if share > max_rejected_share else WARNING,
                evidence + " (reports/rejected.csv lists each with its line)",
                fix,
            )
        )
    silence = {k: v for k, v in reasons.items() if k in ("silent", "excess_silence", "empty_audio")}
    clipping = reasons.get("clipped", 0) + report.get("warnings_by_kind", {}).get("some_clipping", 0)
    checks.append(
        Check(
            "data",
            "silence and clipping",
            WARNING if silence or clipping else OK,
            f"silent/mostly silent rows: {sum(silence.values())}; clipped or partly clipped: {clipping}",
            "see reports/rejected.csv and reports/warnings.csv" if silence or clipping else "",
        )
    )
    rates = report.get("sample_rates", {})
    if len(rates) > 1:
        checks.append(
            Check(
                "data",
                "sample rates",
                WARNING,
                "mixed sample rates: " + ", ".join(f"{r} Hz x{n}" for r, n in sorted(rates.items())),
                "precompute resamples them all; make sure the low-rate files are not band-limited speech "
                "that the model will learn to imitate",
            )
        )
    else:
        checks.append(Check("data", "sample rates", OK, f"one sample rate: {', '.join(rates) or '-'} Hz"))
    return checks


def check_alignment(report: dict[str, Any] | None) -> list[Check]:
    """Alignment-score outliers (reports/precompute.json `align`)."""
    if report is None:
        return [
            Check(
                "data", "precompute report", PROBLEM, "reports/precompute.json is missing", "run dvc repro precompute"
            )
        ]
    align = report.get("align", {})
    flagged = align.get("flagged_ids", [])
    if not flagged:
        return [
            Check(
                "data",
                "alignment outliers",
                OK,
                f"no utterance aligns badly (median score {align.get('score_median', float('nan')):.3f})",
            )
        ]
    share = len(flagged) / max(report["utterances"], 1)
    return [
        Check(
            "data",
            "alignment outliers",
            PROBLEM if share > 0.05 else WARNING,
            f"{len(flagged)} utterances ({share:.1%}) align far worse than the rest; listen to: {', '.join(flagged[:10])}",
            "a badly aligned utterance usually has the wrong transcript: fix or drop it (reports/align_flagged.csv)",
        )
    ]


def check_store(store_path: Path, min_symbol_count: int, max_frames: int) -> list[Check]:
    """Symbol coverage in the training split, lengths against the model's limit, mel statistics."""
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore

    if not store_path.exists():
        return [Check("data", "features", PROBLEM, f"{store_path} is missing", "run dvc repro precompute")]
    store = FeatureStore(store_path)
    symbols = store.attrs["symbols"]
    train = np.flatnonzero(store.array("split") == TRAIN)
    counts = np.zeros(len(symbols), dtype=np.int64)
    for i in train:
        counts += np.bincount(store.tokens(int(i)).astype(np.int64), minlength=len(symbols))
    rare = [(symbols[k], int(counts[k])) for k in range(1, len(symbols)) if counts[k] < min_symbol_count]
    checks = [
        Check(
            "data",
            "symbol coverage",
            WARNING if rare else OK,
            (
                f"{len(rare)} of {len(symbols) - 1} symbols occur fewer than {min_symbol_count} times in training: "
                + ", ".join(f"{s!r} x{n}" for s, n in sorted(rare, key=lambda x: x[1])[:15])
            )
            if rare
            else f"every symbol occurs at least {min_symbol_count} times in training",
            "the model will say rare symbols badly: add sentences that contain them" if rare else "",
        )
    ]
    frames = store.frames()
    longest = int(frames.max()) if len(frames) else 0
    checks.append(
        Check(
            "data",
            "utterance lengths",
            PROBLEM if longest > max_frames else OK,
            f"frames per utterance: median {int(np.median(frames))}, longest {longest}; the model's position table holds {max_frames}",
            "lower data.validate.max_duration so nothing is longer than the model can place"
            if longest > max_frames
            else "",
        )
    )
    std = np.asarray(store.attrs["mel_std"], dtype=np.float64)
    flat = np.flatnonzero(std < 1e-3)
    checks.append(
        Check(
            "data",
            "mel statistics",
            PROBLEM if len(flat) else OK,
            f"{len(flat)} constant mel channels {flat.tolist()[:10]}"
            if len(flat)
            else f"no constant mel channel (std {std.min():.3f}..{std.max():.3f})",
            "check features.fmax against the sample rate: channels above Nyquist carry nothing" if len(flat) else "",
        )
    )
    return checks


def check_store_integrity(store_path: Path, listed: int = 10) -> list[Check]:
    """Every chunk of every array in the store decodes (each decoded once); the damaged ones are
    named with their array, chunk and file (the first `listed` of them). Nothing to say of a
    missing store: `check_store` says it."""
    from pipeline.features.store import REBUILD_FIX, damaged_chunks

    if not store_path.exists():
        return []
    damaged = damaged_chunks(store_path)
    if not damaged:
        return [Check("data", "store integrity", OK, f"every chunk of every array in {store_path} decodes")]
    more = f"; and {len(damaged) - listed} more" if len(damaged) > listed else ""
    return [
        Check(
            "data",
            "store integrity",
            PROBLEM,
            f"{len(damaged)} damaged chunk(s) in {store_path}: " + "; ".join(map(str, damaged[:listed])) + more,
            REBUILD_FIX,
        )
    ]


def check_checkpoint(checkpoint: Path, store_path: Path) -> list[Check]:
    """The checkpoint is readable, and normalizes and reads text the way the features were made."""
    from pipeline.features.store import FeatureStore
    from pipeline.training.checkpoint import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(checkpoint)
    except CheckpointError as e:
        return [Check("data", "checkpoint vs features", PROBLEM, str(e), UNREADABLE_CHECKPOINT_FIX)]
    if not store_path.exists():
        return [
            Check(
                "data",
                "checkpoint vs features",
                WARNING,
                f"{store_path} is missing: not compared",
                "run dvc repro precompute",
            )
        ]
    attrs = FeatureStore(store_path).attrs
    diffs = [k for k in ("mel_mean", "mel_std") if not np.allclose(ckpt[k], attrs[k])]
    diffs += [k for k in ("symbols", "mel", "frontend") if ckpt[k] != attrs[k]]
    return [
        Check(
            "data",
            "checkpoint vs features",
            PROBLEM if diffs else OK,
            f"{checkpoint} differs from {store_path} in: {', '.join(diffs)}"
            if diffs
            else f"{checkpoint} normalizes mels and reads text exactly as the features were made",
            "the features changed after training: retrain (dvc repro train)" if diffs else "",
        )
    ]
