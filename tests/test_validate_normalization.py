"""Validate and the normalized_text column: an empty one is filled by spelling the text out
(model.textnorm) and listed in reports/warnings.csv; a given one is never changed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import TEXTS, write_corpus
from pipeline.config import DataConfig, data_config
from pipeline.data.validation import NORMALIZED_FROM_TEXT, ValidationResult, validate_corpus, write_outputs

pytestmark = pytest.mark.usefixtures("warm_librosa")

GOOD = [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)]
WRITTEN = "In 1999, Dr. Smith paid $5.50 for 3 books."
SPOKEN = "In nineteen ninety nine, Doctor Smith paid five dollars, fifty cents for three books."


@pytest.fixture
def cfg(params: dict) -> DataConfig:
    return data_config(params)


def corpus_with(root: Path, utt_id: str, line: str, spoken: str) -> Path:
    """The good rows plus `utt_id`, whose metadata line is `line` and whose audio is as long as
    `spoken` takes to say (so its speaking rate is that of the other rows)."""
    corpus = write_corpus(root, [*GOOD, (utt_id, spoken)])
    lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    (corpus / "metadata.csv").write_text("\n".join([*lines[:-1], line]) + "\n", encoding="utf-8")
    return corpus


def validate(corpus: Path, cfg: DataConfig) -> ValidationResult:
    return validate_corpus(corpus, cfg, target_sample_rate=22050, workers=1)


def test_an_empty_normalized_text_is_the_text_spelled_out(tmp_path, cfg) -> None:
    result = validate(corpus_with(tmp_path / "c", "numbers", f"numbers|{WRITTEN}|", SPOKEN), cfg)
    assert result.rejected.empty
    row = result.manifest.set_index("id").loc["numbers"]
    assert row["normalized"] == SPOKEN and row["text"] == WRITTEN


def test_a_row_spelled_out_is_listed_in_warnings_csv_with_what_it_became(tmp_path, cfg) -> None:
    result = validate(corpus_with(tmp_path / "c", "numbers", f"numbers|{WRITTEN}|", SPOKEN), cfg)
    write_outputs(result, tmp_path / "manifest.parquet", tmp_path / "reports")
    warnings = pd.read_csv(tmp_path / "reports" / "warnings.csv")
    assert warnings[["id", "kind", "detail"]].values.tolist() == [
        ["numbers", NORMALIZED_FROM_TEXT, f'normalized_text was empty; spoken as: "{SPOKEN}"']
    ]


def test_an_empty_normalized_text_with_nothing_to_spell_out_is_not_listed(tmp_path, cfg) -> None:
    spoken = "The tired porter closed the station gate."
    result = validate(corpus_with(tmp_path / "c", "plain", f"plain|{spoken}|", spoken), cfg)
    assert result.rejected.empty and result.warnings.empty


def test_digits_in_a_given_normalized_text_are_still_rejected(tmp_path, cfg) -> None:
    result = validate(corpus_with(tmp_path / "c", "numbers", f"numbers|{WRITTEN}|{WRITTEN}", WRITTEN), cfg)
    assert result.rejected["id"].tolist() == ["numbers"]
    assert result.rejected["reasons"].iloc[0] == "unsupported_chars"


def test_a_given_normalized_text_is_kept_as_written(tmp_path, cfg) -> None:
    # "Dr." is said by espeak-ng as the corpus's speaker said it; validate must not rewrite it.
    given = "Dr. Smith closed the station gate."
    result = validate(corpus_with(tmp_path / "c", "title", f"title|{given}|{given}", given), cfg)
    assert result.manifest.set_index("id").loc["title", "normalized"] == given
    assert result.warnings.empty
