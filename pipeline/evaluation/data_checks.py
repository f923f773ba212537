"""The data half of `hamgara doctor`: what validate and precompute reported, the features
store, and the checkpoint read against the store.

Rejections by reason, silence and clipping, the sample-rate mix, alignment-score outliers with
the ids to listen to, every chunk of the store decoding, symbol coverage, phoneme and diphone
coverage of the training transcripts (and of a text given to doctor: coverage.py counts),
lengths against the model's limit, mel statistics, and whether the checkpoint normalizes and
reads text the way the features were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.rejections import FIXES
from pipeline.evaluation.coverage import (
    MAX_ONCE_SHARE,
    Script,
    Unseen,
    count_coverage,
    script_symbols,
    show,
    text_coverage,
    training_sequences,
)
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


def check_scored_sets(store_path: Path, min_validation: int = 80) -> list[Check]:
    """How many sentences evaluate's figures rest on: the validation split (the in-grammar WER
    gap) and the unseen one (`wer.unseen`). A warning below `min_validation` validation
    utterances: the gap's 95% interval is then wide enough that one run's gap is a draw
    (docs/measurements.md has the demo's intervals at 25 and at 100)."""
    from pipeline.features.split import TRAIN, UNSEEN, VAL
    from pipeline.features.store import FeatureStore

    if not store_path.exists():
        return []
    split = FeatureStore(store_path).array("split")
    train, val, unseen = (int((split == code).sum()) for code in (TRAIN, VAL, UNSEEN))
    evidence = f"{val} validation utterance(s), {train} training"
    evidence += (
        f", {unseen} unseen (scored apart as wer.unseen)"
        if unseen
        else "; no unseen sentences (no unseen.txt: evaluate cannot say how the voice reads words training never had)"
    )
    few = val < min_validation
    return [
        Check(
            "data",
            "scored sentences",
            WARNING if few else OK,
            evidence,
            f"fewer than {min_validation} validation utterances make the WER gap a draw: list sentences to validate on "
            "in validation.txt beside metadata.csv, or raise features.val_share (docs/corpus.md)"
            if few
            else "",
        )
    ]


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


# What to do about diphones seen too rarely, or not at all: more, and more varied, sentences.
COVERAGE_FIX = (
    "record more varied sentences, ideally from a recording script chosen for diphone coverage; "
    "`hamgara doctor --text script.txt` lists the pairs a candidate script holds that training never had, "
    "and the lines to record first (docs/corpus.md, 'Phoneme and diphone coverage')"
)
TEXT_COVERAGE = "text coverage"


def _coverage_name(language: str, languages: list[str]) -> str:
    # A one-language store keeps the plain name (what doctor.json readers look up); with several,
    # one check per language, named for it.
    return "diphone coverage" if len(languages) == 1 else f"diphone coverage ({language})"


def check_diphone_coverage(store_path: Path, max_once_share: float = MAX_ONCE_SHARE, listed: int = 10) -> list[Check]:
    """Phonemes and diphones of the training transcripts, per language: how many distinct, how
    often, the share of the seen phonemes' ordered pairs they cover, and the rarest with an
    utterance that holds each. More than `max_once_share` of the diphones seen only once is a
    warning (never a problem: a voice still trains, it says the rare passages worse)."""
    if not store_path.exists():
        return []  # check_store says the store is missing
    per_language = training_sequences(store_path)
    checks = []
    for language, (ids, sequences) in per_language.items():
        name = _coverage_name(language, list(per_language))
        cov = count_coverage(sequences)
        if not cov.diphones:
            checks.append(
                Check(
                    "data",
                    name,
                    WARNING,
                    f"{language}: no diphone in the {len(ids)} training utterances",
                    "give the language training utterances of more than one sound",
                )
            )
            continue
        bands = cov.bands()
        rare_phonemes = ", ".join(f"{p!r} x{n}" for p, n in cov.rarest_phonemes(5))
        rarest = ", ".join(f"{show(d)!r} x{n} ({ids[cov.first_seen[d]]})" for d, n in cov.rarest(listed))
        evidence = (
            f"{language}: {len(cov.phonemes)} phonemes (stress folded; rarest {rare_phonemes}) and "
            f"{len(cov.diphones)} distinct diphones in {len(ids)} training utterances, "
            f"{cov.pair_share:.1%} of the {cov.candidates} ordered pairs of those phonemes; "
            f"seen once {bands['once']} ({cov.once_share:.0%}), 2-4 times {bands['2-4']}, 5+ times {bands['5+']}; "
            f"rarest: {rarest}"
        )
        warn = cov.once_share > max_once_share
        checks.append(
            Check(
                "data",
                name,
                WARNING if warn else OK,
                evidence,
                f"more than {max_once_share:.0%} of the diphones are seen only once, so the voice learns those "
                f"passages from one recording each: {COVERAGE_FIX}"
                if warn
                else "",
            )
        )
    return checks


def _unseen_listing(items: list[Unseen], what: str, listed: int) -> str:
    more = f", and {len(items) - listed} more" if len(items) > listed else ""
    shown = ", ".join(f"{u.item!r} x{u.count} (line {u.line})" for u in items[:listed])
    return f"{len(items)} {what} never seen: {shown}{more}"


def check_text_coverage(store_path: Path, script: Script, language: str | None = None, listed: int = 15) -> list[Check]:
    """The diphones and phonemes of a text (one sentence per line) that the training split never
    had, most frequent first, each with how often the text holds it and its first line; the share
    of the text's diphone occurrences training had; and the lines that cover the unseen diphones
    soonest. Anything unseen is a warning. `language` defaults to the store's one language; a
    language the store does not hold (or a store of several without one) is a ValueError."""
    from pipeline.features.store import FeatureStore

    if not store_path.exists():
        return [
            Check("data", TEXT_COVERAGE, WARNING, f"{store_path} is missing: not compared", "run dvc repro precompute")
        ]
    per_language = training_sequences(store_path)
    held = list(per_language)
    if language is None and len(held) != 1:
        raise ValueError(f"{store_path} holds the languages {', '.join(held)}: name the text's with --language")
    language = language or held[0]
    if language not in per_language:
        raise ValueError(f"--language {language}: {store_path} holds no utterance of it (it holds {', '.join(held)})")
    training = count_coverage(per_language[language][1])
    result = text_coverage(training, script_symbols(script, language, FeatureStore(store_path).attrs["frontend"]))
    head = (
        f"{script.path.name} ({result.lines} line{'' if result.lines == 1 else 's'}, {language}): "
        f"{result.seen_occurrences} of {result.occurrences} "
        f"diphone occurrences ({result.seen_share:.1%}) were seen in training"
    )
    if not result.unseen_diphones and not result.unseen_phonemes:
        return [Check("data", TEXT_COVERAGE, OK, head + "; no phoneme or diphone of it is new to the voice")]
    parts = [head]
    if result.unseen_diphones:
        parts.append(_unseen_listing(result.unseen_diphones, "diphone(s)", listed))
    if result.unseen_phonemes:
        parts.append(_unseen_listing(result.unseen_phonemes, "phoneme(s)", listed))
    fix = (
        "the voice says passages it never heard worse than the rest, and a phoneme it never heard badly or not at "
        "all: record sentences that hold them and add them to the corpus"
    )
    if result.pick:
        more = f", and {len(result.pick) - listed} more lines" if len(result.pick) > listed else ""
        fix += "; the lines of this text that cover the unseen diphones soonest, in order (new diphones each): "
        fix += ", ".join(f"{line} (+{gain})" for line, gain in result.pick[:listed]) + more
    return [Check("data", TEXT_COVERAGE, WARNING, "; ".join(parts), fix)]
