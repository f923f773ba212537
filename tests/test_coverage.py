"""Phoneme and diphone coverage (issue 33): what the training transcripts hold, what a text asks
for that training never had, and how `hamgara doctor` says both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.doctor import main as doctor_main
from pipeline.evaluation.coverage import (
    Script,
    Unseen,
    count_coverage,
    diphones,
    greedy_pick,
    phoneme,
    read_script,
    script_symbols,
    show,
    text_coverage,
    training_sequences,
)
from pipeline.evaluation.data_checks import TEXT_COVERAGE, check_diphone_coverage, check_text_coverage
from pipeline.evaluation.verdicts import OK, WARNING
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore

# "at all, he said." as the frontend writes it: stress joined to the phone, " " between words.
AT_ALL = ["æ", "ɾ", " ", "ˈɔː", "l", ",", " ", "h", "iː", " ", "s", "ˈɛ", "d", "."]


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("a", "a"),
        ("ˈa", "a"),  # primary stress folded
        ("ˌa", "a"),  # secondary stress folded
        ("ˈɑː", "ɑː"),  # the length mark stays: a long vowel is another phoneme
        ("dʒ", "dʒ"),
        (" ", None),  # the word separator
        (",", None),
        ("?", None),
        ("؟", None),  # Persian punctuation too
        ("_", None),  # the pad symbol
        ("ˈ", None),  # a stress mark left alone at the end of a text
    ],
)
def test_a_symbol_counts_as_its_phoneme_with_stress_folded_and_separators_and_punctuation_as_none(
    symbol: str, expected: str | None
) -> None:
    assert phoneme(symbol) == expected


def test_diphones_join_across_a_word_boundary_but_not_across_punctuation() -> None:
    assert [show(d) for d in diphones(AT_ALL)] == ["æ-ɾ", "ɾ-ɔː", "ɔː-l", "h-iː", "iː-s", "s-ɛ", "ɛ-d"]


def test_a_stressed_and_an_unstressed_vowel_make_one_diphone() -> None:
    cov = count_coverage([["t", "ˈa"], ["t", "a"], ["t", "ˌa"]])
    assert cov.diphones == {("t", "a"): 3} and cov.phonemes == {"t": 3, "a": 3}


def test_the_counts_say_how_many_diphones_are_seen_once_two_to_four_times_and_five_or_more() -> None:
    sequences = [["a", "b"]] * 5 + [["b", "c"]] * 2 + [["c", "a"]]
    cov = count_coverage(sequences)
    assert cov.bands() == {"once": 1, "2-4": 1, "5+": 1}
    assert cov.once_share == pytest.approx(1 / 3)


def test_the_candidate_pairs_are_every_ordered_pair_of_the_phonemes_seen() -> None:
    cov = count_coverage([["a", "b", "c"]])
    assert cov.candidates == 9 and cov.pair_share == pytest.approx(2 / 9)


def test_the_rarest_diphones_come_first_and_name_the_first_sequence_that_holds_them() -> None:
    cov = count_coverage([["a", "b"], ["a", "b", " ", "c"], ["a", "b"]])
    assert cov.rarest(2) == [(("b", "c"), 1), (("a", "b"), 3)]
    assert cov.first_seen[("b", "c")] == 1


# Training that holds k-a, a-t, t-a and a-k (stress folded), and no "p".
TRAINING = [["k", "ˈa", "t"], ["t", "a", "k"]]


def test_a_text_with_a_diphone_training_never_had_lists_it_with_its_count_and_first_line() -> None:
    lines = [(1, ["k", "a", "t"]), (3, ["t", "ˈa", " ", "p", "a"]), (4, ["t", "a", "p"])]
    result = text_coverage(count_coverage(TRAINING), lines)
    assert result.unseen_diphones == [Unseen("a-p", 2, 3), Unseen("p-a", 1, 3)]
    assert result.unseen_phonemes == [Unseen("p", 2, 3)]
    assert (result.occurrences, result.seen_occurrences) == (7, 4)


def test_a_text_of_diphones_training_had_lists_none_and_is_all_seen() -> None:
    result = text_coverage(count_coverage(TRAINING), [(1, ["k", "a", "t"]), (2, ["t", " ", "ˌa", "k", "."])])
    assert result.unseen_diphones == [] and result.unseen_phonemes == []
    assert result.seen_share == 1.0 and result.pick == []


def test_the_lines_to_record_first_are_those_that_add_the_most_unseen_diphones() -> None:
    pick = greedy_pick([(1, {("a", "p")}), (2, {("a", "p"), ("p", "a"), ("o", "p")}), (5, {("x", "y")}), (7, set())])
    assert pick == [(2, 3), (5, 1)]  # line 1 adds nothing once line 2 is recorded


def test_a_script_keeps_the_line_numbers_an_editor_shows(tmp_path: Path) -> None:
    path = tmp_path / "script.txt"
    path.write_text("First line.\n\n  Third line.  \n", encoding="utf-8")
    assert read_script(path).lines == [(1, "First line."), (3, "Third line.")]


def test_a_script_without_text_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text"):
        read_script(tmp_path / "empty.txt")


def test_a_script_is_phonemized_as_synthesis_reads_it_with_amounts_spelled_out() -> None:
    # espeak-ng alone reads "$5" as "dollar five"; synthesis says "five dollars".
    lines = [(2, "It costs $5."), (4, "It costs five dollars.")]
    read = script_symbols(Script(Path("s.txt"), lines), "en-us", "phonemes")
    assert [line for line, _ in read] == [2, 4] and read[0][1] == read[1][1]


# --- the store and doctor --------------------------------------------------------------------------


def test_the_training_transcripts_are_read_per_language_from_the_training_split(tiny_store: Path) -> None:
    store = FeatureStore(tiny_store)
    [(language, (ids, sequences))] = training_sequences(tiny_store).items()
    train = np.flatnonzero(store.array("split") == TRAIN)
    assert language == "en-us" and ids == [store.ids[i] for i in train] and len(ids) < len(store)
    assert sequences[0] == [store.attrs["symbols"][t] for t in store.tokens(int(train[0]))]


def test_the_tiny_store_has_too_many_diphones_seen_once_and_the_warning_says_how_to_fix_it(tiny_store: Path) -> None:
    [check] = check_diphone_coverage(tiny_store)
    assert check.name == "diphone coverage" and check.verdict == WARNING
    assert "distinct diphones" in check.evidence and "seen once" in check.evidence and "rarest" in check.evidence
    assert "recording script" in check.fix and "--text" in check.fix


def test_diphone_coverage_under_the_threshold_is_ok(tiny_store: Path) -> None:
    [check] = check_diphone_coverage(tiny_store, max_once_share=1.0)
    assert check.verdict == OK and check.fix == ""


def _two_languages(store_path: Path) -> dict:
    # The tiny store's training split, told as if half of it were Persian (building a two-language
    # store would cost a precompute run for a naming rule).
    ids, sequences = training_sequences(store_path)["en-us"]
    half = len(ids) // 2
    return {"en-us": (ids[:half], sequences[:half]), "fa": (ids[half:], sequences[half:])}


def test_a_store_of_two_languages_gets_one_coverage_check_per_language_named_for_it(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.evaluation.data_checks.training_sequences", _two_languages)
    checks = check_diphone_coverage(tiny_store)
    assert [c.name for c in checks] == ["diphone coverage (en-us)", "diphone coverage (fa)"]
    assert checks[1].evidence.startswith("fa: ")


def test_a_text_for_a_store_of_two_languages_must_name_its_language(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("pipeline.evaluation.data_checks.training_sequences", _two_languages)
    with pytest.raises(ValueError, match="--language"):
        check_text_coverage(tiny_store, Script(tmp_path / "t.txt", [(1, "Hello.")]))


def test_a_training_transcript_given_as_text_holds_nothing_new(tiny_store: Path, tmp_path: Path) -> None:
    store = FeatureStore(tiny_store)
    ids, _ = training_sequences(tiny_store)["en-us"]
    text = store.attrs["texts"][store.ids.index(ids[0])]
    [check] = check_text_coverage(tiny_store, Script(tmp_path / "t.txt", [(1, text)]))
    assert check.verdict == OK and "(100.0%)" in check.evidence


# A validation report with nothing rejected: doctor's other data checks stay quiet.
CLEAN = {
    "rows": 12,
    "accepted": 12,
    "rejected": 0,
    "rejected_share": 0.0,
    "rejected_by_reason": {},
    "warnings": 0,
    "warnings_by_kind": {},
    "sample_rates": {"22050": 12},
}


def _reports(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "validation.json").write_text(json.dumps(CLEAN))
    (reports / "precompute.json").write_text(json.dumps({"utterances": 12, "align": {"flagged_ids": []}}))
    return reports


def _doctor(tmp_path: Path, tiny_store: Path, tiny_runs: dict, *extra: str) -> int:
    run = tiny_runs["parallel"]
    return doctor_main(
        ["--reports", str(_reports(tmp_path)), "--features", str(tiny_store)]
        + ["--checkpoint", str(run / "models" / "best.pt"), "--run", str(run / "dvclive")]
        + ["--vocoder", str(tmp_path / "no_vocoder.pt"), "--min-symbol-count", "1", "--overfit-steps", "0"]
        + list(extra)
    )


def test_doctor_text_lists_a_diphone_training_never_had_with_its_line_as_a_warning_not_a_problem(
    tiny_store: Path, tiny_runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "pleasure" holds ʒ-ɚ; the tiny corpus has ʒ only in "gentle" (dʒ-ɛ), never before ɚ.
    script = tmp_path / "my_script.txt"
    script.write_text("\nThe pleasure was ours.\n", encoding="utf-8")
    assert _doctor(tmp_path, tiny_store, tiny_runs, "--text", str(script)) == 0
    checks = {c["name"]: c for c in json.loads((tmp_path / "reports" / "doctor.json").read_text())["checks"]}
    text = checks[TEXT_COVERAGE]
    assert text["verdict"] == WARNING and "'ʒ-ɚ' x1 (line 2)" in text["evidence"]
    assert "my_script.txt (1 line, en-us)" in text["evidence"]
    assert "diphone coverage" in checks
    assert f"{WARNING}: data/{TEXT_COVERAGE}: my_script.txt" in capsys.readouterr().out


def test_doctor_text_in_a_language_the_store_does_not_hold_is_bad_input(
    tiny_store: Path, tiny_runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "s.txt"
    script.write_text("سلام\n", encoding="utf-8")
    assert _doctor(tmp_path, tiny_store, tiny_runs, "--text", str(script), "--language", "fa") == 2
    assert "--language fa" in capsys.readouterr().err


def test_doctor_text_that_does_not_exist_is_bad_input(tiny_store: Path, tiny_runs: dict, tmp_path: Path) -> None:
    assert _doctor(tmp_path, tiny_store, tiny_runs, "--text", str(tmp_path / "missing.txt")) == 2
