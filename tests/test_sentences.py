"""The demo sentence generator: deterministic, bounded, unique, plain characters; and the
unseen-words hold-out, whose words no training sentence may hold."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from pipeline.demo.sentences import (
    CONTENT_CLASSES,
    FULL,
    TEMPLATES,
    Vocabulary,
    generate_sentences,
    generate_unseen_sentences,
    hold_out,
    item_words,
    leaked_words,
    sentence_words,
)


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


# The unseen-words hold-out (issue 33): training text that never holds a held-back word.
HELD = hold_out(0.2, ["request"], seed=1234)


def test_the_whole_grammar_is_what_generate_sentences_draws_from_by_default() -> None:
    assert generate_sentences(60, 5, 20, seed=9) == generate_sentences(60, 5, 20, seed=9, vocabulary=FULL)


def test_a_fifth_of_every_content_class_is_held_back() -> None:
    for name in CONTENT_CLASSES:
        items = getattr(FULL, name)
        held = [i for i in items if item_words(i) <= HELD.words]
        assert len(held) >= math.ceil(0.2 * len(items)), name


def test_no_training_sentence_holds_a_held_back_word() -> None:
    sentences = generate_sentences(2000, 5, 20, seed=1234, vocabulary=HELD.train)
    assert leaked_words(sentences, HELD.words) == {}


def test_a_planted_held_back_word_in_a_training_sentence_is_found() -> None:
    word = sorted(HELD.words)[0]
    sentences = [*generate_sentences(20, 5, 20, seed=3, vocabulary=HELD.train), f"The {word} was here."]
    assert leaked_words(sentences, HELD.words) == {word: 20}


def test_a_held_word_leaves_every_list_it_is_in() -> None:
    # "find" is a verb of things and of people; "noticed" a verb and a report verb.
    held = hold_out(0.2, [], seed=1234)
    for field in dataclasses.fields(Vocabulary):
        if field.name in ("templates", "pronouns"):
            continue
        for item in getattr(held.train, field.name):
            assert not item_words(item) & held.words, (field.name, item)


def test_a_held_back_template_writes_no_training_sentence() -> None:
    sentences = generate_sentences(500, 5, 20, seed=2, vocabulary=HELD.train)
    assert not any(s.startswith("Please") for s in sentences)
    assert "request" not in HELD.train.templates


def test_every_unseen_sentence_holds_a_held_back_word() -> None:
    unseen = generate_unseen_sentences(40, 5, 20, seed=1234, held=HELD)
    assert len(set(unseen)) == 40
    for sentence in unseen:
        assert set(sentence_words(sentence)) & HELD.words, sentence


def test_unseen_sentences_use_many_held_back_words_and_stay_in_bounds() -> None:
    unseen = generate_unseen_sentences(40, 5, 20, seed=1234, held=HELD)
    used = {w for s in unseen for w in sentence_words(s)} & HELD.words
    assert len(used) >= 30
    assert all(5 <= len(s.split()) <= 20 for s in unseen)


def test_the_hold_out_is_seeded() -> None:
    assert hold_out(0.2, [], seed=5) == hold_out(0.2, [], seed=5)
    assert hold_out(0.2, [], seed=5).words != hold_out(0.2, [], seed=6).words


def test_no_hold_out_leaves_the_whole_grammar() -> None:
    held = hold_out(0.0, [], seed=1)
    assert held.words == frozenset() and held.train == FULL


@pytest.mark.parametrize(
    ("share", "templates", "message"),
    [
        (0.2, ["speech"], "unknown sentence template"),
        (0.99, [], "leaves no"),
        (0.2, list(TEMPLATES), "every sentence template is held back"),
    ],
)
def test_an_impossible_hold_out_is_refused(share: float, templates: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hold_out(share, templates, seed=0)


def test_unseen_sentences_need_held_back_words() -> None:
    with pytest.raises(ValueError, match="held-back words"):
        generate_unseen_sentences(3, 5, 20, seed=0, held=hold_out(0.0, [], seed=0))
