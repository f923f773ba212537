"""`hamgara doctor` flags planted problems in the reports and the run history, with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import tiny_params
from pipeline.doctor import main as doctor_main
from pipeline.evaluation.data_checks import check_alignment, check_checkpoint, check_store, check_validation
from pipeline.evaluation.run_checks import check_free_running, check_run, check_unseen_words
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING

CLEAN = {
    "rows": 100,
    "accepted": 100,
    "rejected": 0,
    "rejected_share": 0.0,
    "rejected_by_reason": {},
    "warnings": 0,
    "warnings_by_kind": {},
    "sample_rates": {"22050": 100},
}


def _verdicts(checks) -> dict[str, str]:
    return {c.name: c.verdict for c in checks}


def test_a_clean_validation_report_is_all_ok() -> None:
    assert set(_verdicts(check_validation(CLEAN)).values()) == {OK}


def test_silent_files_are_flagged_with_the_fix() -> None:
    report = {**CLEAN, "accepted": 98, "rejected": 2, "rejected_share": 0.02, "rejected_by_reason": {"silent": 2}}
    checks = {c.name: c for c in check_validation(report)}
    assert checks["rejected rows"].verdict == WARNING and "silent 2" in checks["rejected rows"].evidence
    assert "re-record" in checks["rejected rows"].fix
    assert checks["silence and clipping"].verdict == WARNING


def test_many_rejections_are_a_problem() -> None:
    report = {**CLEAN, "rejected": 20, "rejected_share": 0.2, "rejected_by_reason": {"rate_outlier": 20}}
    assert _verdicts(check_validation(report))["rejected rows"] == PROBLEM


def test_mixed_sample_rates_are_a_warning() -> None:
    assert _verdicts(check_validation({**CLEAN, "sample_rates": {"22050": 60, "16000": 40}}))["sample rates"] == WARNING


def test_a_mismatched_transcript_flagged_by_the_aligner_names_the_id_to_listen_to() -> None:
    check = check_alignment({"utterances": 100, "align": {"flagged_ids": ["utt_042"], "score_median": 0.1}})[0]
    assert check.verdict == WARNING and "utt_042" in check.evidence and "transcript" in check.fix


def test_the_tiny_store_passes_the_store_checks_and_rare_symbols_are_flagged(tiny_store) -> None:
    checks = {c.name: c for c in check_store(tiny_store, min_symbol_count=0, max_frames=8192)}
    assert checks["symbol coverage"].verdict == OK and checks["mel statistics"].verdict == OK
    assert check_store(tiny_store, min_symbol_count=10**6, max_frames=8192)[0].verdict == WARNING
    assert {c.name: c.verdict for c in check_store(tiny_store, 1, max_frames=10)}["utterance lengths"] == PROBLEM


def test_a_checkpoint_from_other_features_is_a_problem(tiny_runs, tiny_store, tmp_path) -> None:
    import torch

    path = tiny_runs["parallel"] / "models" / "best.pt"
    assert check_checkpoint(path, tiny_store)[0].verdict == OK
    ckpt = torch.load(path, weights_only=True)
    ckpt["mel_mean"] = [m + 1.0 for m in ckpt["mel_mean"]]
    torch.save(ckpt, tmp_path / "other.pt")
    check = check_checkpoint(tmp_path / "other.pt", tiny_store)[0]
    assert check.verdict == PROBLEM and "mel_mean" in check.evidence


def _history(root: Path, **series: list[float]) -> Path:
    """A dvclive-like history: name -> values at steps 0, 1, 2, ..."""
    for name, values in series.items():
        path = root / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        leaf = name.split("/")[-1]
        path.write_text(f"step\t{leaf}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))
    return root


def test_a_healthy_run_history_is_all_ok(tmp_path) -> None:
    live = _history(
        tmp_path,
        **{
            "train/loss": [3, 2, 1],
            "train/lr": [1e-4, 5e-4, 1e-3],
            "train/skipped_steps": [0, 0, 0],
            "train/loss_slope": [-0.1, -0.1, -0.1],
            "val_mel_loss": [0.5, 0.4, 0.3],
            "train/frames_per_s": [1000, 1000, 1000],
        },
    )
    assert set(_verdicts(check_run(live)).values()) == {OK}


def test_a_too_low_learning_rate_is_flagged(tmp_path) -> None:
    live = _history(tmp_path, **{"train/loss": [3, 3, 3], "train/lr": [1e-7, 1e-6, 2e-6]})
    check = {c.name: c for c in check_run(live)}["learning rate"]
    assert check.verdict == WARNING and "raise train.lr" in check.fix


def test_skipped_steps_a_flat_loss_and_overfitting_are_flagged(tmp_path) -> None:
    live = _history(
        tmp_path,
        **{
            "train/loss": [3, 2, 1, 1],
            "train/skipped_steps": [0, 1, 2, 3],
            "train/loss_slope": [-0.1, 0.0, 0.01, 0.02],
            "val_mel_loss": [0.5, 0.3, 0.4, 0.45],
        },
    )
    verdicts = _verdicts(check_run(live))
    assert verdicts["non-finite steps"] == WARNING
    assert verdicts["convergence slope"] == WARNING
    assert verdicts["train/validation gap"] == WARNING


def test_low_gpu_utilisation_points_at_the_loader(tmp_path) -> None:
    live = _history(tmp_path, **{"train/loss": [3, 2], "train/gpu_utilization": [40, 45], "train/frames_per_s": [9, 9]})
    check = {c.name: c for c in check_run(live)}["GPU utilisation"]
    assert check.verdict == WARNING and "num_workers" in check.fix


def test_doctor_writes_the_report_and_exits_4_on_a_problem(tmp_path, params, tiny_store, tiny_runs) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    # The model checks build the model from --params: the committed defaults with the tiny model,
    # never the workspace params.yaml (an experiment may have rewritten it).
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(params)), encoding="utf-8")
    (reports / "validation.json").write_text(
        json.dumps({**CLEAN, "rejected": 30, "rejected_share": 0.3, "rejected_by_reason": {"clipped": 30}})
    )
    (reports / "precompute.json").write_text(json.dumps({"utterances": 12, "align": {"flagged_ids": []}}))
    rc = doctor_main(
        [
            "--reports",
            str(reports),
            "--features",
            str(tiny_store),
            "--checkpoint",
            str(tiny_runs["parallel"] / "models" / "best.pt"),
            "--run",
            str(tiny_runs["parallel"] / "dvclive"),
            "--min-symbol-count",
            "1",
            "--params",
            str(params_file),
            # The model checks run and are reported; whether the tiny model overfits in time is
            # the model-check tests' question below, not this one's (150 steps by default).
            "--overfit-steps",
            "2",
        ]
    )
    assert rc == 4
    md = (reports / "doctor.md").read_text()
    assert md.index("PROBLEM") < md.index("| ok |") and "re-record at a lower gain" in md
    assert {c["name"] for c in json.loads((reports / "doctor.json").read_text())["checks"]} >= {
        "rejected rows",
        "learning rate",
        "overfit one batch",
    }


def _model_checks(params, tiny_store, overfit_steps: int = 150, **train) -> dict:
    from helpers import tiny_params
    from pipeline.evaluation.model_diagnosis import check_model

    p = tiny_params(params, **train)
    return {c.name: c for c in check_model(p, tiny_store, overfit_steps=overfit_steps, overfit_lr=3e-3)}


def test_the_model_checks_pass_on_a_healthy_model(params, tiny_store) -> None:
    checks = _model_checks(params, tiny_store)
    assert checks["overfit one batch"].verdict == OK, checks["overfit one batch"].evidence
    assert checks["gradient flow"].verdict == OK


def test_a_weight_that_makes_one_term_dominate_is_flagged(params, tiny_store) -> None:
    # Every model check runs; the gradient shares do not depend on how long the overfit check
    # trains its own fresh model, so it takes one step instead of 150.
    checks = _model_checks(params, tiny_store, overfit_steps=1, duration_loss_weight=1e4)
    check = checks["loss-term gradient shares"]
    assert check.verdict == WARNING and "lower train.duration_loss_weight" in check.fix


def test_a_broken_mask_fails_the_overfit_check(params, tiny_store, monkeypatch) -> None:
    import pipeline.training.dataset as dataset

    real = dataset.collate

    def broken(items):  # the classic bug: padding counted as real frames, real frames masked
        batch, padding = real(items)
        batch.frame_mask = ~batch.frame_mask
        return batch, padding

    monkeypatch.setattr(dataset, "collate", broken)
    checks = _model_checks(params, tiny_store)
    assert checks["overfit one batch"].verdict == PROBLEM and "masks" in checks["overfit one batch"].fix


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a checkpoint \x00\xff" * 64)
    return path


def _truncated(real: Path, path: Path) -> Path:
    data = real.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut short, as by a full disk
    return path


def _foreign(path: Path) -> Path:
    import torch

    torch.save({"state_dict": {}}, path)
    return path


@pytest.mark.parametrize("plant", ["missing", "garbage", "truncated", "foreign"])
def test_an_unreadable_checkpoint_is_a_problem_with_a_fix_not_a_traceback(
    plant, tiny_runs, tiny_store, tmp_path
) -> None:
    real = tiny_runs["parallel"] / "models" / "best.pt"
    path = {
        "missing": lambda p: p,
        "garbage": _garbage,
        "truncated": lambda p: _truncated(real, p),
        "foreign": _foreign,
    }[plant](tmp_path / "best.pt")
    check = check_checkpoint(path, tiny_store)[0]
    assert check.verdict == PROBLEM and str(path) in check.evidence and "--checkpoint" in check.fix


@pytest.mark.parametrize("plant", ["garbage", "truncated"])
def test_doctor_reports_a_planted_bad_checkpoint_and_exits_4(plant, tiny_runs, tiny_store, tmp_path) -> None:
    real = tiny_runs["parallel"] / "models" / "best.pt"
    bad = _garbage(tmp_path / "best.pt") if plant == "garbage" else _truncated(real, tmp_path / "best.pt")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "validation.json").write_text(json.dumps(CLEAN))
    (reports / "precompute.json").write_text(json.dumps({"utterances": 12, "align": {"flagged_ids": []}}))
    args = ["--reports", str(reports), "--features", str(tiny_store), "--checkpoint", str(bad)]
    rc = doctor_main(args + ["--run", str(tiny_runs["parallel"] / "dvclive"), "--overfit-steps", "0"])
    assert rc == 4
    checks = {c["name"]: c for c in json.loads((reports / "doctor.json").read_text())["checks"]}
    assert checks["checkpoint vs features"]["verdict"] == PROBLEM and checks["checkpoint vs features"]["fix"]
    assert "| PROBLEM | data | checkpoint vs features |" in (reports / "doctor.md").read_text()


def test_the_model_checks_fall_back_to_a_fresh_model_on_an_unreadable_checkpoint(params, tiny_store, tmp_path) -> None:
    from helpers import tiny_params
    from pipeline.evaluation.model_diagnosis import check_gradient_shares, make_probe

    probe = make_probe(tiny_params(params), tiny_store, batch_size=2)
    check = check_gradient_shares(probe, _garbage(tmp_path / "best.pt"), 0.9, 0.01)
    assert "at initialisation" in check.evidence


def _free_history(root: Path, forced: list[float], free: list[float], on_time: list[float]) -> Path:
    return _history(
        root,
        **{
            "free/teacher_forced_distance": forced,
            "free/mel_distance": free,
            "free/exposure_gap": [a - b for a, b in zip(free, forced)],
            "free/stop_on_time": on_time,
            "free/stop_never": [1.0 - t for t in on_time],
        },
    )


def test_a_growing_free_running_gap_is_called_exposure_bias_with_the_evidence_and_the_fix(tmp_path) -> None:
    live = _free_history(tmp_path, forced=[0.8, 0.5, 0.3], free=[0.9, 0.8, 0.75], on_time=[1.0, 1.0, 1.0])
    check = {c.name: c for c in check_free_running(live)}["free-running synthesis"]
    assert check.verdict == WARNING
    assert check.evidence.startswith("exposure bias") and "0.750 against 0.300" in check.evidence
    assert "grown from +0.100" in check.evidence
    assert "aligned_conditioning" in check.fix and "scheduled_sampling" in check.fix


def test_a_large_gap_is_exposure_bias_even_when_it_shrinks(tmp_path) -> None:
    # Measured on the demo without aligned conditioning: the gap fell, free-running stayed 1.6x.
    live = _free_history(tmp_path, forced=[0.35, 0.25], free=[0.69, 0.40], on_time=[0.75, 1.0])
    check = {c.name: c for c in check_free_running(live)}["free-running synthesis"]
    assert check.verdict == WARNING and "down from +0.340" in check.evidence


def test_free_running_close_to_teacher_forcing_is_ok(tmp_path) -> None:
    live = _free_history(tmp_path, forced=[0.8, 0.5, 0.3], free=[1.0, 0.6, 0.35], on_time=[0.5, 0.9, 1.0])
    assert set(_verdicts(check_free_running(live)).values()) == {OK}


def test_utterances_that_do_not_end_on_time_are_flagged(tmp_path) -> None:
    live = _free_history(tmp_path, forced=[0.5, 0.4], free=[0.5, 0.42], on_time=[1.0, 0.75])
    check = {c.name: c for c in check_free_running(live)}["utterances end on time"]
    assert check.verdict == WARNING and "25%" in check.evidence


def test_a_run_without_free_running_figures_gets_no_free_running_checks(tmp_path) -> None:
    assert check_free_running(_history(tmp_path, **{"train/loss": [3, 2]})) == []


def test_unseen_sentences_read_clearly_worse_than_the_validation_ones_are_flagged(tmp_path) -> None:
    live = _history(tmp_path, **{"free/mel_distance": [0.6, 0.40], "free_unseen/mel_distance": [0.7, 0.56]})
    (check,) = check_unseen_words(live)
    assert check.verdict == WARNING and "0.560 on the unseen sentences against 0.400" in check.evidence
    assert "1.40x" in check.evidence and "doctor --text" in check.fix


def test_unseen_sentences_within_the_bar_of_the_validation_ones_are_ok(tmp_path) -> None:
    live = _history(tmp_path, **{"free/mel_distance": [0.6, 0.40], "free_unseen/mel_distance": [0.9, 0.50]})
    assert [c.verdict for c in check_unseen_words(live)] == [OK]


def test_a_run_without_unseen_sentences_gets_no_unseen_words_check(tmp_path) -> None:
    assert check_unseen_words(_history(tmp_path, **{"free/mel_distance": [0.5, 0.4]})) == []


def test_the_scored_sentences_are_counted_and_too_few_validation_ones_warned(tiny_store, tiny_unseen_store) -> None:
    from pipeline.evaluation.data_checks import check_scored_sets

    (few,) = check_scored_sets(tiny_store)
    assert few.verdict == WARNING and "validation.txt" in few.fix and "no unseen sentences" in few.evidence
    (enough,) = check_scored_sets(tiny_unseen_store, min_validation=1)
    assert enough.verdict == OK and "2 unseen" in enough.evidence
