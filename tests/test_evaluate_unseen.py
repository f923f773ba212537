"""The evaluate stage's unseen sentences (split UNSEEN: text whose words training never had):
scored like the validation utterances, reported beside them, and never mixed into them."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers import committed_params
from pipeline.config import eval_config
from pipeline.evaluation.scoring import evaluate
from pipeline.features.split import TRAIN, UNSEEN

PLANTED = 3  # training utterances of the tiny store turned unseen


@pytest.fixture(scope="module")
def planted_store(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of the tiny store whose first PLANTED training utterances are UNSEEN (the
    validation split untouched), and the ids planted."""
    store = tmp_path_factory.mktemp("planted") / "features.zarr"
    shutil.copytree(tiny_store, store)
    split = zarr.open_group(str(store), mode="r+")["split"]
    codes = np.asarray(split[:])
    planted = np.flatnonzero(codes == TRAIN)[:PLANTED]
    codes[planted] = UNSEEN
    split[:] = codes
    ids = list(zarr.open_group(str(store), mode="r").attrs["ids"])
    return store, [ids[i] for i in planted]


def _evaluate(tiny_runs: dict, store: Path, manifest: Path, reports: Path, **changes) -> dict:
    """Evaluate the tiny autoregressive run on `store` (one validation utterance, Griffin-Lim,
    the recordings of `manifest`); `changes` to the eval settings."""
    params = committed_params()
    settings = {
        "checkpoint": str(tiny_runs["autoregressive"] / "models" / "best.pt"),
        "griffin_lim_iters": 4,
        "vocoder": "griffin_lim",
        "utterances": 1,
        "unseen_utterances": 0,
        "device": "cpu",
        "samples": 1,
        "figures": 1,
        "sentences": ["The small dog slept."],
        **changes,
    }
    cfg = dataclasses.replace(eval_config(params), **settings)
    return evaluate(
        store,
        manifest,
        tiny_runs["autoregressive"] / "dvclive",
        cfg,
        params,
        reports,
        progress=False,
        vocoder_path=reports.parent / "no_vocoder.pt",
    )


@pytest.fixture(scope="module")
def plain_eval(tiny_runs, tiny_store, tmp_path_factory) -> tuple[dict, Path]:
    """The tiny store as precompute made it (no unseen sentences), with the recognizer."""
    reports = tmp_path_factory.mktemp("plain") / "reports"
    return _evaluate(tiny_runs, tiny_store, tiny_store.parent / "manifest.parquet", reports), reports


@pytest.fixture(scope="module")
def planted_eval(tiny_runs, tiny_store, planted_store, tmp_path_factory) -> tuple[dict, Path]:
    """The same checkpoint and settings on the store with PLANTED unseen sentences."""
    reports = tmp_path_factory.mktemp("planted_eval") / "reports"
    return _evaluate(tiny_runs, planted_store[0], tiny_store.parent / "manifest.parquet", reports), reports


def _table(reports: Path) -> list[dict[str, str]]:
    with open(reports / "eval_utterances.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_eval_json_scores_every_planted_unseen_sentence(planted_eval) -> None:
    metrics, reports = planted_eval
    on_disk = json.loads((reports / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    unseen = on_disk["unseen"]
    assert set(unseen) == {"utterances", "mcd_model", "length_ratio_error", "stop"}
    assert unseen["utterances"] == PLANTED and sum(unseen["stop"].values()) == PLANTED
    assert unseen["mcd_model"] > 0 and unseen["length_ratio_error"] >= 0


def test_the_recognizer_scores_the_unseen_sentences_gap_with_its_interval(planted_eval) -> None:
    metrics, _ = planted_eval
    wer = metrics["wer"]["unseen"]
    assert set(wer) == {"synthesized", "vocoded_truth", "gap", "gap_ci95_low", "gap_ci95_high"}
    assert wer["gap"] == pytest.approx(wer["synthesized"] - wer["vocoded_truth"])
    assert wer["gap_ci95_low"] <= wer["gap_ci95_high"]


def test_the_validation_figures_do_not_change_when_the_store_has_unseen_sentences(plain_eval, planted_eval) -> None:
    # Same checkpoint, same validation utterances: every in-grammar figure is identical (the
    # recognizer hears the unseen sentences last, so even its adaptation leaves them alone).
    # Timings (rtf) are left out: they are measured, not computed.
    plain, planted = plain_eval[0], planted_eval[0]
    for key in ("utterances", "val_mel_loss", "alignment_error", "mcd", "length_ratio_error", "stop", "per_speaker"):
        assert planted[key] == plain[key], key
    assert planted["duration_mae_frames"] == plain["duration_mae_frames"]
    assert {k: v for k, v in planted["wer"].items() if k != "unseen"} == plain["wer"]
    for name, figures in plain["vocoder"].items():
        if isinstance(figures, dict):
            # To rounding: pystoi's ESTOI of the same audio was seen to differ in its last digit
            # between two runs of one process (0.58130323671223 against ...22299).
            drop = {"rtf_one_thread"}
            kept = {k: v for k, v in figures.items() if k not in drop}
            assert {k: v for k, v in planted["vocoder"][name].items() if k not in drop} == pytest.approx(
                kept, rel=1e-9
            ), name


def test_a_store_without_unseen_sentences_reports_none(plain_eval) -> None:
    metrics, reports = plain_eval
    on_disk = json.loads((reports / "eval.json").read_text())
    assert "unseen" not in on_disk and "unseen" not in on_disk["wer"]
    assert {r["set"] for r in _table(reports)} == {"val"}
    assert "Unseen sentences" not in (reports / "summary.md").read_text()
    assert 'id="unseen"' not in (reports / "index.html").read_text()


def test_eval_unseen_utterances_caps_how_many_are_scored(tiny_runs, tiny_store, planted_store, tmp_path) -> None:
    # No recognizer: the cap is about synthesis, and `unseen` is there without `wer`.
    metrics = _evaluate(
        tiny_runs,
        planted_store[0],
        tiny_store.parent / "manifest.parquet",
        tmp_path / "reports",
        unseen_utterances=1,
        recognizer="none",
    )
    assert metrics["unseen"]["utterances"] == 1 and "wer" not in metrics


def test_a_planted_unseen_sentence_is_never_a_validation_row(planted_eval, planted_store) -> None:
    metrics, reports = planted_eval
    rows = _table(reports)
    val = [r["id"] for r in rows if r["set"] == "val"]
    assert len(val) == metrics["utterances"] and not set(val) & set(planted_store[1])
    assert sorted(r["id"] for r in rows if r["set"] == "unseen") == sorted(planted_store[1])


def test_the_first_unseen_sentences_are_written_as_samples_to_hear(planted_eval, planted_store) -> None:
    _, reports = planted_eval
    first = sorted(planted_store[1])[0]  # eval.samples is 1
    names = {p.name for p in (reports / "samples").glob("*.wav")}
    assert {f"{first}_synthesized.wav", f"{first}_vocoded_truth.wav"} <= names
    assert f"{first}_truth.wav" not in names  # the recording is scored against, not sampled
    others = tuple(f"{i}_" for i in sorted(planted_store[1])[1:])
    assert not any(n.startswith(others) for n in names)


def test_summary_and_page_show_the_unseen_figures_beside_the_validation_ones(planted_eval, planted_store) -> None:
    metrics, reports = planted_eval
    summary = (reports / "summary.md").read_text()
    assert "| WER gap, unseen sentences |" in summary and "## Unseen sentences" in summary
    side_by_side = summary.split("## Unseen sentences")[1]
    assert f"| utterances | {metrics['utterances']} | {PLANTED} |" in side_by_side
    page = (reports / "index.html").read_text()
    assert '<section id="unseen">' in page
    listen = page.split('<section id="samples">')[1]
    assert sorted(planted_store[1])[0] in listen.split("<h3>Unseen sentences</h3>")[1]


def test_eval_vocoder_utterances_caps_the_vocoder_comparison_but_not_the_validation_rows(
    tiny_runs, tiny_store, tmp_path
) -> None:
    # The comparison is the costly part of a validation utterance's scoring; the in-grammar
    # WER gap still hears every validation utterance.
    reports = tmp_path / "reports"
    metrics = _evaluate(
        tiny_runs, tiny_store, tiny_store.parent / "manifest.parquet", reports, utterances=0, vocoder_utterances=1
    )
    validation = [r for r in _table(reports) if r["set"] == "val"]
    assert len(validation) == metrics["utterances"] > 1
    assert metrics["vocoder"]["griffin_lim"]["utterances"] == 1
