"""The unseen-words split end to end: a corpus's unseen.txt, the manifest's `unseen` column,
the store's split unseen, and training that neither trains nor validates on it but probes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import TEXTS, committed_params, write_corpus
from pipeline.config import data_config
from pipeline.data.metadata import MetadataError, read_metadata
from pipeline.features.split import SPLIT_NAMES, TRAIN, UNSEEN, VAL
from pipeline.features.store import FeatureStore


def _corpus(tmp_path: Path, unseen: str) -> Path:
    corpus = write_corpus(tmp_path / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS[:4])])
    (corpus / "unseen.txt").write_text(unseen)
    return corpus


def test_unseen_txt_marks_its_ids_and_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "# the held-out sentences\n\nutt_001  # a comment\nutt_003\n")
    table = read_metadata(corpus, data_config(committed_params()))
    assert table.loc[table["unseen"], "id"].tolist() == ["utt_001", "utt_003"]


def test_an_unseen_id_that_is_no_metadata_row_is_refused_with_file_and_line(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "utt_001\nutt_0O2\n")
    with pytest.raises(MetadataError, match=r"unseen\.txt:2: id 'utt_0O2' is not in metadata\.csv"):
        read_metadata(corpus, data_config(committed_params()))


def test_a_corpus_without_unseen_txt_has_no_unseen_rows(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", [("utt_000", TEXTS[0])])
    assert not read_metadata(corpus, data_config(committed_params()))["unseen"].any()


def test_the_manifest_carries_the_unseen_column_only_when_a_row_is_held_out(
    tiny_store: Path, tiny_unseen_store: Path
) -> None:
    held = pd.read_parquet(tiny_unseen_store.parent / "manifest.parquet")
    assert held.loc[held["unseen"], "id"].tolist() == ["utt_010", "utt_011"]
    assert "unseen" not in pd.read_parquet(tiny_store.parent / "manifest.parquet").columns


def test_precompute_gives_the_listed_utterances_the_unseen_split(tiny_unseen_store: Path) -> None:
    store = FeatureStore(tiny_unseen_store)
    split = dict(zip(store.attrs["ids"], store.array("split").tolist()))
    assert split["utt_010"] == UNSEEN and split["utt_011"] == UNSEEN
    assert {s for i, s in split.items() if i not in ("utt_010", "utt_011")} <= {TRAIN, VAL}
    assert store.attrs["split_names"] == list(SPLIT_NAMES)


def test_the_mel_statistics_come_from_the_training_split_alone(tiny_unseen_store: Path) -> None:
    store = FeatureStore(tiny_unseen_store)
    split = store.array("split")
    train = np.concatenate([store.mel(int(i)) for i in np.flatnonzero(split == TRAIN)])
    everything = np.concatenate([store.mel(i) for i in range(len(split))])
    np.testing.assert_allclose(store.attrs["mel_mean"], train.mean(0), rtol=1e-4, atol=1e-4)
    assert not np.allclose(store.attrs["mel_mean"], everything.mean(0), rtol=1e-4, atol=1e-4)


def test_training_logs_the_unseen_probe_at_every_validation(tiny_unseen_store: Path, tmp_path: Path) -> None:
    from helpers import tiny_params
    from pipeline.evaluation.history import read_series
    from pipeline.training.loop import fit

    params = tiny_params(committed_params(), max_steps=4)
    fit(tiny_unseen_store, params, tmp_path / "models", tmp_path / "dvclive", progress=False)
    metrics = tmp_path / "dvclive" / "plots" / "metrics"
    val_steps, _ = read_series(metrics / "val_mel_loss.tsv")
    steps, values = read_series(metrics / "free_unseen" / "mel_distance.tsv")
    assert steps.tolist() == val_steps.tolist() and np.isfinite(values).all()


def test_training_without_unseen_utterances_logs_no_unseen_probe(tiny_runs: dict[str, Path]) -> None:
    assert not (tiny_runs["autoregressive"] / "dvclive" / "plots" / "metrics" / "free_unseen").exists()
