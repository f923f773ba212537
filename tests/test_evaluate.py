"""The evaluate stage: free-running synthesis of the validation split, every metric written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import committed_params
from pipeline.config import eval_config
from pipeline.evaluation.per_speaker import per_speaker
from pipeline.evaluation.report import summary_markdown
from pipeline.evaluation.scoring import evaluate, stop_outcome


def _run(
    tiny_runs, tiny_store, tmp_path, decoder: str, vocoder: Path | None = None, utterances: int = 0, **changes
) -> tuple[dict, object]:
    """Evaluate a tiny run, heard through Griffin-Lim, or through the trained `vocoder` when given
    (never a models/vocoder.pt a demo run left in the working tree); `changes` to the eval settings."""
    params = committed_params()
    cfg = dataclasses.replace(
        eval_config(params),
        checkpoint=str(tiny_runs[decoder] / "models" / "best.pt"),
        griffin_lim_iters=4,
        vocoder="trained" if vocoder is not None else "griffin_lim",
        utterances=utterances,
        device="cpu",
        samples=1,
        figures=1,
        sentences=["The small dog slept."],
        **changes,
    )
    reports = tmp_path / "reports"
    metrics = evaluate(
        tiny_store,
        tiny_store.parent / "manifest.parquet",
        tiny_runs[decoder] / "dvclive",
        cfg,
        params,
        reports,
        progress=False,
        vocoder_path=vocoder if vocoder is not None else tmp_path / "no_vocoder.pt",
    )
    return metrics, reports


@pytest.fixture(scope="module")
def ar_eval(tiny_runs, tiny_store, tmp_path_factory) -> tuple[dict, object]:
    return _run(tiny_runs, tiny_store, tmp_path_factory.mktemp("eval_ar"), "autoregressive")


def test_evaluate_writes_every_metric_for_the_autoregressive_decoder(ar_eval) -> None:
    metrics, reports = ar_eval
    on_disk = json.loads((reports / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("val_mel_loss", "alignment_error", "length_ratio_error", "duration_mae_frames"):
        assert isinstance(on_disk[key], float), key
    assert set(on_disk["mcd"]) == {"model", "vocoder_ceiling", "model_share"}
    assert on_disk["mcd"]["model"] > 0 and on_disk["mcd"]["vocoder_ceiling"] > 0
    assert sum(on_disk["stop"].values()) == on_disk["utterances"] >= 2
    assert set(on_disk["wer"]) == {
        "synthesized",
        "vocoded_truth",
        "truth",
        "gap",
        "gap_ci95_low",
        "gap_ci95_high",
        "held_back",
    }
    assert set(on_disk["rtf"]) == {"model", "vocoder", "total"} and on_disk["rtf"]["total"] > 0
    conv = on_disk["convergence"]
    assert conv["validations"] >= 2 and {"val_curve_area", "wall_seconds", "best_val_mel_loss"} <= set(conv)


def test_evaluate_writes_the_per_speaker_figures(ar_eval) -> None:
    metrics, reports = ar_eval
    speakers = metrics["per_speaker"]
    assert sum(s["utterances"] for s in speakers.values()) == metrics["utterances"]
    for s in speakers.values():
        assert {"utterances", "mcd", "length_ratio_error", "stop_on_time", "wer"} <= set(s)
        assert set(s["wer"]) == {"synthesized", "vocoded_truth", "truth", "gap"}
    assert "speaker" in (reports / "eval_utterances.csv").read_text().splitlines()[0].split(",")


def _row(speaker: str, heard: str, mcd: float) -> dict:
    text = "the small dog slept"
    return {
        "speaker": speaker,
        "text": text,
        "length_ratio": 1.1,
        "stop": None,
        "mcd_model": mcd,
        "mcd_vocoder": 3.0,
        "heard_synthesized": heard,
        "heard_vocoded_truth": text,
        "heard_truth": text,
    }


def test_per_speaker_keeps_a_small_speakers_failure_apart_from_the_big_speakers_success() -> None:
    # Planted: the small speaker's synthesis is unintelligible, the big one's perfect; the mean
    # over all rows (gap 0.2) would hide that one speaker does not speak at all.
    rows = [_row("lj", "the small dog slept", 5.0) for _ in range(8)] + [_row("p301", "", 9.0) for _ in range(2)]
    speakers = per_speaker(rows)
    assert list(speakers) == ["lj", "p301"]
    assert speakers["lj"]["wer"]["gap"] == 0.0 and speakers["p301"]["wer"]["gap"] == 1.0
    assert speakers["lj"]["mcd"]["model"] == 5.0 and speakers["p301"]["mcd"]["model"] == 9.0
    assert speakers["p301"]["utterances"] == 2
    assert speakers["lj"]["length_ratio_error"] == pytest.approx(0.1)
    assert "stop_on_time" not in speakers["lj"]  # the parallel decoder has no stop token


def test_the_summary_has_a_per_speaker_table_when_there_are_several_speakers(ar_eval) -> None:
    metrics, _ = ar_eval
    two = {**metrics, "per_speaker": per_speaker([_row("lj", "the small dog", 5.0), _row("p301", "", 9.0)])}
    cfg = eval_config(committed_params())
    assert "## Per speaker" not in summary_markdown(
        metrics, [], [], cfg
    )  # one speaker: the table would repeat the whole
    table = summary_markdown(two, [], [], cfg).split("## Per speaker")[1]
    assert "| p301 | 1 | 1.000 |" in table and "| lj | 1 | 0.250 |" in table


def test_evaluate_writes_samples_figures_table_and_summary(ar_eval) -> None:
    metrics, reports = ar_eval
    kinds = sorted(p.name.split("_", 2)[-1] for p in (reports / "samples").glob("utt_*.wav"))
    assert kinds == ["synthesized.wav", "truth.wav", "vocoded_truth.wav"]
    assert (reports / "samples" / "held_back_01.wav").is_file()
    assert sorted(p.name.split("_")[-1] for p in (reports / "figures" / "eval").glob("*.png")) == [
        "attention.png",
        "mel.png",
    ]
    assert len((reports / "eval_utterances.csv").read_text().splitlines()) == metrics["utterances"] + 1
    assert "MCD-DTW, model" in (reports / "summary.md").read_text()


def test_evaluate_works_for_the_parallel_decoder_without_stop_metrics(tiny_runs, tiny_store, tmp_path) -> None:
    # One utterance: every score and the recognizer still run (the whole split is ar_eval's).
    metrics, _ = _run(tiny_runs, tiny_store, tmp_path, "parallel", utterances=1)
    assert metrics["decoder"] == "parallel" and "stop" not in metrics and "alignment_error" not in metrics
    assert metrics["mcd"]["model"] > 0 and "wer" in metrics


@pytest.mark.parametrize(
    "fired, predicted, outcome",
    [(True, 100, "on_time"), (True, 70, "early"), (True, 130, "late"), (False, 200, "never"), (None, 100, None)],
)
def test_stop_outcome_classifies_by_the_length_tolerance(fired, predicted, outcome) -> None:
    assert stop_outcome(fired, predicted, 100, 0.2) == outcome


def test_a_capped_evaluation_takes_its_utterances_from_every_speaker_in_turn() -> None:
    from pipeline.evaluation.per_speaker import spread_over_speakers

    indices = np.arange(10, 30)
    speakers = np.array([0] * 16 + [1] * 2 + [2] * 2)  # one big speaker, two small ones at the end
    assert spread_over_speakers(indices, speakers, 5) == [10, 11, 26, 27, 28]
    assert spread_over_speakers(indices, speakers, 100) == list(range(10, 30))
    assert spread_over_speakers(indices, np.zeros(20, dtype=int), 4) == [10, 11, 12, 13]  # one speaker: the first


def test_evaluate_scores_griffin_lim_and_the_trained_vocoder_side_by_side(
    tiny_runs, tiny_store, tiny_vocoder, tmp_path
) -> None:
    # One utterance: every vocoder, score and recognizer still runs, at a third of the cost.
    metrics, reports = _run(tiny_runs, tiny_store, tmp_path, "autoregressive", vocoder=tiny_vocoder, utterances=1)
    compared = metrics["vocoder"]
    assert compared["used"] == "trained" and {"griffin_lim", "trained"} <= set(compared)
    for name in ("griffin_lim", "trained"):
        figures = compared[name]
        assert {"pesq_wb", "estoi", "mcd", "rtf_one_thread", "wer_copy", "wer_synthesized", "wer_gap"} <= set(figures)
        assert figures["mcd"] > 0 and figures["rtf_one_thread"] > 0
        assert figures["wer_gap"] == pytest.approx(figures["wer_synthesized"] - figures["wer_copy"])
    # The primary vocoder's figures are the evaluation's own: one recognizer, one set of waves.
    assert compared["trained"]["wer_copy"] == metrics["wer"]["vocoded_truth"]
    assert compared["trained"]["mcd"] == pytest.approx(metrics["mcd"]["vocoder_ceiling"])
    kinds = {p.name.split("_", 2)[-1] for p in (reports / "samples").glob("utt_*.wav")}
    assert {"synthesized_griffin_lim.wav", "vocoded_truth_griffin_lim.wav", "truth.wav"} <= kinds
    assert "## Vocoders" in (reports / "summary.md").read_text()


def test_evaluate_with_griffin_lim_still_compares_an_existing_trained_vocoder(
    tiny_runs, tiny_store, tiny_vocoder, tmp_path
) -> None:
    # No recognizer: which vocoders are compared does not depend on it.
    metrics, _ = _run(tiny_runs, tiny_store, tmp_path, "autoregressive", utterances=1, recognizer="none")
    assert set(metrics["vocoder"]) == {"used", "griffin_lim"}  # none at the path it was given
    params = committed_params()
    cfg = dataclasses.replace(
        eval_config(params),
        checkpoint=str(tiny_runs["parallel"] / "models" / "best.pt"),
        griffin_lim_iters=4,
        vocoder="griffin_lim",
        device="cpu",
        samples=0,
        figures=0,
        sentences=[],
        recognizer="none",
        utterances=1,
    )
    metrics = evaluate(
        tiny_store,
        tiny_store.parent / "manifest.parquet",
        tiny_runs["parallel"] / "dvclive",
        cfg,
        params,
        tmp_path / "reports",
        progress=False,
        vocoder_path=tiny_vocoder,
    )
    assert metrics["vocoder"]["used"] == "griffin_lim" and "trained" in metrics["vocoder"]
    assert "wer_copy" not in metrics["vocoder"]["trained"]  # no recognizer, no WER


def test_evaluate_with_a_trained_vocoder_that_is_missing_says_how_to_make_one(tiny_runs, tiny_store, tmp_path) -> None:
    from pipeline.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="dvc repro vocoder"):
        _run(tiny_runs, tiny_store, tmp_path, "autoregressive", vocoder=tmp_path / "models" / "vocoder.pt")
