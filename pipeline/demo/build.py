"""Build the demo corpus: synthesize generated sentences with festival into an LJSpeech-layout
folder (metadata.csv, wavs/) plus festival's true phone and word timings (alignments/) and a
summary (corpus.json). With `unseen_utterances`, a seeded share of the grammar's words is held
back from every training sentence, and that many sentences that use them are added under ids
listed in unseen.txt (the unseen-words test set). With `validation_utterances`, that many more
sentences of the training grammar are listed in validation.txt: an in-grammar set large enough
to score the WER gap against. The whole folder is built next to its target and renamed into
place at the end, so a killed run never leaves half a corpus.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import soundfile as sf
from tqdm import tqdm

from pipeline.common.atomic import atomic_path, write_json, write_text
from pipeline.common.runtime import process_pool
from pipeline.config import ConfigError, DemoConfig
from pipeline.demo.festival import Timings, festival_path, synthesize_batch
from pipeline.demo.sentences import FULL, HoldOut, generate_sentences, generate_unseen_sentences, hold_out, leaked_words

Batch = tuple[list[tuple[str, str]], str, str, int]


# Extra speakers are numbered from here, VCTK-style (p225..p376 there): p301, p302, ...
FIRST_EXTRA_SPEAKER = 301


def utterance_ids(n: int, prefix: str = "demo") -> list[str]:
    """Ids demo_0001, demo_0002, ...; wider numbers only when n needs more than four digits."""
    width = max(4, len(str(n)))
    return [f"{prefix}_{i:0{width}d}" for i in range(1, n + 1)]


# Ids of the unseen-words sentences: the main speaker's prefix first, so that a speaker regex
# like '^(p\d+|demo)_' gives them the main speaker.
UNSEEN_PREFIX = "demo_unseen"
# Ids of the in-grammar sentences validation.txt lists (the same reason for the prefix).
VALIDATION_PREFIX = "demo_val"


def vctk_ids(speaker: int, n: int) -> list[str]:
    """VCTK-style ids of one extra speaker: p301_001_mic1, p301_002_mic1, ..."""
    width = max(3, len(str(n)))
    return [f"p{speaker}_{i:0{width}d}_mic1" for i in range(1, n + 1)]


def _synthesize(batch: Batch) -> dict[str, Timings]:
    # Module-level so that the pool can pickle it under any start method.
    items, wav_dir, voice, sample_rate = batch
    return synthesize_batch(items, Path(wav_dir), voice, sample_rate)


def _alignment(utt_id: str, timings: Timings) -> dict[str, Any]:
    return {
        "id": utt_id,
        "phones": [[p.label, p.start, p.end] for p in timings.phones],
        "words": [[w.label, w.start, w.end] for w in timings.words],
    }


def _synthesize_all(batches: list[Batch], workers: int, total: int) -> dict[str, Timings]:
    timings: dict[str, Timings] = {}
    with tqdm(total=total, unit="utt", desc="festival") as bar:
        if workers <= 1 or len(batches) <= 1:
            # No pool for a single worker: simpler tracebacks and no fork cost for tiny corpora.
            for result in map(_synthesize, batches):
                timings.update(result)
                bar.update(len(result))
        else:
            with process_pool(min(workers, len(batches)), preload=["pipeline.demo.build"]) as pool:
                for result in pool.imap_unordered(_synthesize, batches):
                    timings.update(result)
                    bar.update(len(result))
    return timings


def build_demo_corpus(cfg: DemoConfig, out: Path, workers: int) -> dict[str, Any]:
    """Synthesize the demo corpus described by `cfg` into the folder `out` and return its summary.

    `out` is replaced as a whole, and only once every utterance has been synthesized.
    Uses up to `workers` festival processes at a time. Raises FestivalError when festival
    or the voice is missing or synthesis fails; `out` is then left as it was.
    """
    if cfg.utterances < 1:
        raise ConfigError(f"params.yaml: data.demo.utterances must be >= 1, got {cfg.utterances}")
    if cfg.batch_size < 1:
        raise ConfigError(f"params.yaml: data.demo.batch_size must be >= 1, got {cfg.batch_size}")
    # Fail before generating anything when festival is absent: the most common setup error.
    festival_path()
    held = _hold_out(cfg)
    speakers, validation = _speaker_items(cfg, held)
    unseen = _unseen_items(cfg, held)
    name, voice, rate, main_items = speakers[0]
    speakers[0] = (name, voice, rate, main_items + validation + unseen)
    items = [item for _, _, _, speaker_items in speakers for item in speaker_items]

    out = Path(out)
    with atomic_path(out, folder=True) as tmp:
        wav_dir = tmp / "wavs"
        align_dir = tmp / "alignments"
        wav_dir.mkdir(parents=True)
        align_dir.mkdir()
        # Batches are cut in id order per speaker, so the same config always gives the same batches.
        batches: list[Batch] = [
            (speaker_items[i : i + cfg.batch_size], str(wav_dir.resolve()), voice, rate)
            for _, voice, rate, speaker_items in speakers
            for i in range(0, len(speaker_items), cfg.batch_size)
        ]
        started = time.perf_counter()
        timings = _synthesize_all(batches, workers, len(items))
        synthesis_seconds = time.perf_counter() - started

        durations = {}
        for utt_id, _ in items:
            write_json(align_dir / f"{utt_id}.json", _alignment(utt_id, timings[utt_id]))
            durations[utt_id] = sf.info(str(wav_dir / f"{utt_id}.wav")).duration
        write_text(tmp / "metadata.csv", "".join(f"{i}|{s}|{s}\n" for i, s in items))
        if unseen:
            write_text(tmp / "unseen.txt", "".join(f"{i}\n" for i, _ in unseen))
        if validation:
            write_text(tmp / "validation.txt", "".join(f"{i}\n" for i, _ in validation))

        summary = _summary(cfg, [s for _, s in items], list(durations.values()))
        if cfg.extra_voices:
            summary["speakers"] = _speaker_summary(speakers, durations)
        if validation:
            summary["validation"] = {
                "utterances": len(validation),
                "minutes": round(sum(durations[i] for i, _ in validation) / 60, 3),
            }
        if held is not None:
            summary["unseen"] = {
                "utterances": len(unseen),
                "minutes": round(sum(durations[i] for i, _ in unseen) / 60, 3),
                "held_words": sorted(held.words),
                "held_templates": list(held.templates),
            }
        # Timing stays out of corpus.json so that the folder is byte-identical for a seed.
        write_json(tmp / "corpus.json", summary)
    return {**summary, "synthesis_seconds": round(synthesis_seconds, 3)}


def _hold_out(cfg: DemoConfig) -> HoldOut | None:
    """The words and templates held back from training, or None without an unseen set."""
    if cfg.unseen_utterances == 0:
        return None
    try:
        return hold_out(cfg.unseen_word_share, cfg.unseen_templates, cfg.seed)
    except ValueError as e:
        raise ConfigError(f"params.yaml: data.demo.unseen_word_share / unseen_templates: {e}") from None


Items = list[tuple[str, str]]


def _speaker_items(cfg: DemoConfig, held: HoldOut | None) -> tuple[list[tuple[str, str, int, Items]], Items]:
    """(speaker name, voice, sample rate, [(id, sentence)]) of each speaker, the main one first,
    and the main voice's validation.txt sentences; every sentence from the hold-out's training
    vocabulary when there is one. The validation sentences continue the main voice's stream of
    distinct sentences, so they repeat no training sentence and leave the training ones as
    they were without them."""
    out = []
    validation: Items = []
    for k, (voice, n, rate, seed) in enumerate(cfg.speakers()):
        number = FIRST_EXTRA_SPEAKER + k - 1
        name, ids = ("demo", utterance_ids(n)) if k == 0 else (f"p{number}", vctk_ids(number, n))
        listed = utterance_ids(cfg.validation_utterances, VALIDATION_PREFIX) if k == 0 else []
        vocabulary = FULL if held is None else held.train
        sentences = generate_sentences(n + len(listed), cfg.min_words, cfg.max_words, seed, vocabulary)
        if held is not None:
            # By construction nothing leaks; checked anyway, since a leak would make wer.unseen a lie.
            leaks = leaked_words(sentences, held.words)
            if leaks:
                word, k_first = next(iter(leaks.items()))
                raise RuntimeError(f"held-back word {word!r} is in training sentence {[*ids, *listed][k_first]}")
        if listed:
            validation = list(zip(listed, sentences[n:]))
        out.append((name, voice, rate, list(zip(ids, sentences[:n]))))
    return out, validation


def _unseen_items(cfg: DemoConfig, held: HoldOut | None) -> list[tuple[str, str]]:
    """[(id, sentence)] of the unseen-words test set, spoken by the main voice."""
    if held is None:
        return []
    sentences = generate_unseen_sentences(cfg.unseen_utterances, cfg.min_words, cfg.max_words, cfg.seed, held)
    return list(zip(utterance_ids(len(sentences), UNSEEN_PREFIX), sentences))


def _speaker_summary(
    speakers: list[tuple[str, str, int, list[tuple[str, str]]]], durations: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """corpus.json's per-speaker part: voice, rate, utterances and minutes of each."""
    return {
        name: {
            "voice": voice,
            "sample_rate": rate,
            "utterances": len(items),
            "minutes": round(sum(durations[i] for i, _ in items) / 60, 3),
        }
        for name, voice, rate, items in speakers
    }


def _summary(cfg: DemoConfig, sentences: list[str], durations: list[float]) -> dict[str, Any]:
    """corpus.json: counts and lengths of the utterances, and the settings that made them."""
    word_counts = [len(s.split()) for s in sentences]
    total_seconds = sum(durations)
    return {
        "utterances": len(sentences),
        "total_seconds": round(total_seconds, 3),
        "total_minutes": round(total_seconds / 60, 3),
        "seconds_min": round(min(durations), 3),
        "seconds_mean": round(total_seconds / len(durations), 3),
        "seconds_max": round(max(durations), 3),
        "sample_rate": cfg.sample_rate,
        "voice": cfg.voice,
        "seed": cfg.seed,
        "words_min": min(word_counts),
        "words_mean": round(statistics.fmean(word_counts), 3),
        "words_max": max(word_counts),
    }
