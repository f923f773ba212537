"""The aligner inside precompute: durations that add up, and transcripts that do not match
their audio flagged by the alignment score even when their length looks plausible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from helpers import committed_params, demo_config
from pipeline.config import align_config, data_config, features_config
from pipeline.data.validation import validate_corpus, write_outputs
from pipeline.demo.build import build_demo_corpus
from pipeline.demo.sentences import generate_sentences
from pipeline.features.build import precompute
from pipeline.features.split import DROPPED
from pipeline.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
SPOKEN = demo_config(utterances=64, min_words=6, max_words=10, seed=5, sample_rate=22050, batch_size=16)


def _letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, warm_librosa: None) -> tuple[Path, str, dict]:
    """A festival-spoken corpus where one transcript is replaced by an unrelated sentence of
    about the same length, validated and precomputed with a short aligner run.

    Festival speaks the corpus in two processes; validate and precompute measure the files in
    this one (librosa's kernels compiled once, by warm_librosa): their pools have their own
    tests (test_validate's command test, test_precompute's pool tests)."""
    params = committed_params()
    root = tmp_path_factory.mktemp("spoken")
    corpus = root / "corpus"
    build_demo_corpus(SPOKEN, corpus, workers=2)
    lines = (corpus / "metadata.csv").read_text().splitlines()
    victim_id, _, victim_text = lines[5].split("|")[:3]
    candidates = generate_sentences(200, 6, 10, seed=99)
    impostor = min(candidates, key=lambda s: abs(_letters(s) - _letters(victim_text)))
    lines[5] = f"{victim_id}|{impostor}|{impostor}"
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n")

    dcfg = dataclasses.replace(data_config(params), corpus=str(corpus))
    fcfg = dataclasses.replace(features_config(params), workers=1, val_share=0.2)
    acfg = dataclasses.replace(align_config(params), steps=200, batch_size=8, device="cpu", figures=2)
    result = validate_corpus(corpus, dcfg, fcfg.sample_rate, workers=fcfg.workers)
    write_outputs(result, root / "manifest.parquet", root / "reports")
    report = precompute(root / "manifest.parquet", root / "features.zarr", fcfg, acfg, root / "figures", progress=False)
    return root, victim_id, {"report": report, "validation": result.report, "rejected": result.rejected}


def test_the_planted_transcript_passes_the_speaking_rate_check(planted: tuple[Path, str, dict]) -> None:
    _, victim, r = planted
    assert victim not in set(r["rejected"]["id"])


def test_the_planted_transcript_is_flagged_by_its_alignment_score(planted: tuple[Path, str, dict]) -> None:
    _, victim, r = planted
    assert r["report"]["align"]["flagged_ids"] == [victim]


def test_flagged_utterances_are_dropped_from_training(planted: tuple[Path, str, dict]) -> None:
    root, victim, r = planted
    fs = FeatureStore(root / "features.zarr")
    split = fs.array("split")
    assert split[fs.ids.index(victim)] == DROPPED
    assert r["report"]["dropped"] == 1


def test_durations_sum_to_frames_and_phones_get_a_frame(planted: tuple[Path, str, dict]) -> None:
    root, _, _ = planted
    fs = FeatureStore(root / "features.zarr")
    table = fs.attrs["symbols"]
    for i in range(len(fs)):
        d = fs.durations(i)
        symbols = [table[t] for t in fs.tokens(i)]
        assert d.sum() == fs.frames()[i]
        assert all(n >= 1 for n, s in zip(d, symbols) if s != " ")


def test_alignment_figures_are_written(planted: tuple[Path, str, dict]) -> None:
    root, _, _ = planted
    figures = sorted((root / "figures").glob("*.png"))
    assert len(figures) == 2
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)


def test_word_boundaries_are_scored_against_festival(planted: tuple[Path, str, dict]) -> None:
    _, _, r = planted
    align = r["report"]["align"]
    assert align["utterances_compared"] >= 60
    assert 0 < align["word_boundary_median_ms"] < 200
    assert np.isfinite(align["word_boundary_mean_ms"])
