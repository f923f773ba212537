"""The demo sentence generator: deterministic, bounded, unique, plain characters."""

from __future__ import annotations

import re

import pytest

from pipeline.demo.sentences import generate_sentences


def test_same_seed_gives_same_sentences() -> None:
    assert generate_sentences(50, 5, 20, seed=7) == generate_sentences(50, 5, 20, seed=7)


def test_different_seeds_give_different_sentences() -> None:
    assert generate_sentences(50, 5, 20, seed=7) != generate_sentences(50, 5, 20, seed=8)


def test_word_counts_stay_within_bounds_and_cover_them() -> None:
    counts = [len(s.split()) for s in generate_sentences(400, 5, 20, seed=1)]
    assert min(counts) == 5 and max(counts) == 20
    # Lengths must spread over the range, not cluster at one value.
    assert len(set(counts)) == 16
    assert 9.0 <= sum(counts) / len(counts) <= 12.0


def test_narrow_bounds_are_respected() -> None:
    counts = {len(s.split()) for s in generate_sentences(30, 12, 13, seed=3)}
    assert counts <= {12, 13}


def test_sentences_are_unique() -> None:
    sentences = generate_sentences(300, 5, 20, seed=2)
    assert len(set(sentences)) == 300


def test_sentences_use_only_plain_characters() -> None:
    shape = re.compile(r"^[A-Z][A-Za-z ,']*[.?]$")
    for s in generate_sentences(300, 5, 20, seed=4):
        assert shape.match(s), s
        assert "  " not in s and " ," not in s, s


def test_both_statements_and_questions_are_made() -> None:
    endings = {s[-1] for s in generate_sentences(200, 5, 20, seed=5)}
    assert endings == {".", "?"}


def test_unreachable_bounds_raise_value_error() -> None:
    with pytest.raises(ValueError, match="word bounds"):
        generate_sentences(5, 10, 4, seed=0)
