"""A corpus's validation.txt: ids that validate whatever their hash draws (the demo's in-grammar
test set), read as strictly as unseen.txt and carried through the manifest into the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import TEXTS, committed_params, write_corpus
from pipeline.config import data_config
from pipeline.data.metadata import MetadataError, read_metadata
from pipeline.features.split import TRAIN, UNSEEN, VAL, split_corpus, split_of


def _corpus(tmp_path: Path, validation: str, unseen: str | None = None) -> Path:
    corpus = write_corpus(tmp_path / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS[:4])])
    (corpus / "validation.txt").write_text(validation)
    if unseen is not None:
        (corpus / "unseen.txt").write_text(unseen)
    return corpus


def test_validation_txt_marks_its_ids_and_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "# chosen for scoring\n\nutt_000\nutt_002  # a comment\n")
    table = read_metadata(corpus, data_config(committed_params()))
    assert table.loc[table["validation"], "id"].tolist() == ["utt_000", "utt_002"]


def test_a_listed_id_that_is_no_metadata_row_is_refused_with_file_and_line(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "utt_000\n\nutt_00l\n")
    with pytest.raises(MetadataError, match=r"validation\.txt:3: id 'utt_00l' is not in metadata\.csv"):
        read_metadata(corpus, data_config(committed_params()))


def test_an_id_both_unseen_and_listed_for_validation_is_refused_naming_the_line(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "utt_000\nutt_001\n", unseen="utt_001\n")
    with pytest.raises(MetadataError, match=r"validation\.txt:2: id 'utt_001' is also in unseen\.txt"):
        read_metadata(corpus, data_config(committed_params()))


def test_a_corpus_without_validation_txt_lists_no_rows(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", [("utt_000", TEXTS[0])])
    assert not read_metadata(corpus, data_config(committed_params()))["validation"].any()


def test_listed_ids_validate_whatever_their_draw_and_the_others_keep_theirs() -> None:
    ids = [f"utt_{i:03d}" for i in range(200)]
    drawn = np.array([split_of(i, 0.05, "salt") for i in ids])
    listed = np.zeros(len(ids), dtype=bool)
    listed[np.flatnonzero(drawn == TRAIN)[:10]] = True
    splits = split_corpus(ids, ["a"] * len(ids), 0.05, "salt", None, listed)
    assert (splits[listed] == VAL).all()
    np.testing.assert_array_equal(splits[~listed], drawn[~listed])


def test_an_unseen_id_stays_unseen_even_when_a_list_marks_it() -> None:
    # read_metadata refuses such a corpus; the split itself still never validates on held-out text.
    ids = ["a", "b", "c"]
    splits = split_corpus(ids, ["s"] * 3, 0.0, "salt", [True, False, False], [True, True, False])
    assert splits.tolist() == [UNSEEN, VAL, TRAIN]


def test_validate_writes_the_validation_column_only_when_a_row_is_listed(tmp_path: Path) -> None:
    from pipeline.data.validation import VALIDATION_COLUMN, validate_corpus

    listed = _corpus(tmp_path / "listed", "utt_001\n")
    plain = write_corpus(tmp_path / "plain" / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS[:4])])
    dcfg = data_config(committed_params())
    with_list = validate_corpus(listed, dcfg, 22050, workers=1)
    without = validate_corpus(plain, dcfg, 22050, workers=1)
    assert with_list.manifest.loc[with_list.manifest[VALIDATION_COLUMN], "id"].tolist() == ["utt_001"]
    assert with_list.report["validation_listed"] == 1
    assert VALIDATION_COLUMN not in without.manifest.columns
