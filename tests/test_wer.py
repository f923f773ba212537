"""Word error rate: hand-computed cases, and the normalization applied to both sides."""

from __future__ import annotations

import sys

import pytest

from pipeline.evaluation.wer import (
    Recognizer,
    RecognizerUnavailable,
    error_counts,
    gap_interval,
    normalize_words,
    word_error_rate,
)


def test_identical_text_has_zero_wer() -> None:
    assert word_error_rate(["the cat sat"], ["the cat sat"]) == 0.0


def test_one_substitution_in_four_words_is_a_quarter() -> None:
    assert word_error_rate(["the cat sat down"], ["the dog sat down"]) == 0.25


def test_edit_kinds_are_counted_separately() -> None:
    c = error_counts("a b c d".split(), "a x c d e".split())
    assert (c.substitutions, c.deletions, c.insertions) == (1, 0, 1)
    c = error_counts("a b c d".split(), "a d".split())
    assert (c.substitutions, c.deletions, c.insertions) == (0, 2, 0)


def test_wer_can_exceed_one_with_insertions() -> None:
    assert word_error_rate(["yes"], ["oh yes yes indeed"]) == 3.0


def test_corpus_wer_pools_errors_over_all_reference_words() -> None:
    # 1 error in 1 word + 0 errors in 3 words = 1/4, not the mean of 1.0 and 0.0
    assert word_error_rate(["hello", "how are you"], ["yellow", "how are you"]) == 0.25


def test_case_and_punctuation_do_not_count_as_errors() -> None:
    assert normalize_words("Did Anna's dog run -- home?") == ["did", "anna's", "dog", "run", "home"]
    assert word_error_rate(["Hello, World!"], ["hello world"]) == 0.0


def test_empty_hypothesis_deletes_every_word() -> None:
    assert word_error_rate(["one two three"], [""]) == 1.0


def test_the_recognizer_runs_offline_and_hears_clear_speech(tmp_path) -> None:
    import soundfile as sf

    from pipeline.demo.festival import synthesize_batch

    text = "please call me back tomorrow morning"
    synthesize_batch([("s", text)], tmp_path, "cmu_us_slt_arctic_hts", 16000)
    wave, sr = sf.read(tmp_path / "s.wav", dtype="float32")
    heard = Recognizer().transcribe(wave, sr)
    assert word_error_rate([text], [heard]) <= 0.5, heard


def test_a_recognizer_that_cannot_be_imported_names_the_setting_and_the_fix(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # what a missing or broken install looks like
    with pytest.raises(RecognizerUnavailable) as raised:
        Recognizer()
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)  # run_stage's one line and exit 2, not a traceback
    assert message.startswith("eval.recognizer is pocketsphinx but the pocketsphinx package cannot be imported (")
    assert message.endswith("install it with `pip install pocketsphinx`, or set eval.recognizer: none")


REFS = [
    "the small dog slept",
    "a bird sang on the wall",
    "he walked home in the rain",
    "the old shop was cold",
] * 3
SYNTH = [
    "the small dog slipped",
    "a bird sang on the wall",
    "he walked home in rain",
    "old shop was cold",
] * 3
VOCODED = [
    "the small dog slept",
    "a bird sang on the wall",
    "he walked home in the rain",
    "the old shop was old",
] * 3


def test_the_gap_interval_holds_the_gap_and_is_the_same_every_time() -> None:
    gap = word_error_rate(REFS, SYNTH) - word_error_rate(REFS, VOCODED)
    low, high = gap_interval(REFS, SYNTH, VOCODED)
    assert low < gap < high
    assert gap_interval(REFS, SYNTH, VOCODED) == (low, high)


def test_identical_hearings_have_a_gap_interval_of_zero() -> None:
    assert gap_interval(REFS, SYNTH, SYNTH) == (0.0, 0.0)


def test_more_utterances_of_the_same_kind_narrow_the_interval_by_their_square_root() -> None:
    low, high = gap_interval(REFS, SYNTH, VOCODED)
    low16, high16 = gap_interval(REFS * 16, SYNTH * 16, VOCODED * 16)
    assert 3.0 < (high - low) / (high16 - low16) < 5.5  # sqrt(16) = 4
