"""`hamgara lr-find`: the LR range test's sweep, its suggestion rule, a diverging run, the command
and doctor's check of train.lr against the suggestion."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import tiny_params
from pipeline.config import ConfigError, lr_find_config
from pipeline.evaluation.run_checks import check_lr_find
from pipeline.evaluation.verdicts import OK, WARNING
from pipeline.training.lr_range import lr_candidates, lr_find, smooth, suggest_lr, sweep_lrs


def test_the_sweep_lrs_rise_exponentially_from_start_to_end() -> None:
    lrs = sweep_lrs(1e-5, 1.0, 11)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    ratios = lrs[1:] / lrs[:-1]
    assert np.allclose(ratios, 10**0.5)  # 5 decades in 10 equal factors


def test_the_smoothing_is_bias_corrected() -> None:
    # A plain EMA starting from 0 would report 0.5, 0.95, ... for a constant loss of 5.
    assert smooth([5.0, 5.0, 5.0], weight=0.1) == pytest.approx([5.0, 5.0, 5.0])


def _synthetic_curve() -> tuple[np.ndarray, np.ndarray]:
    """Flat at 10, a steep descent centred on 1e-3 down to 2, then a divergence from ~3e-2."""
    lrs = np.geomspace(1e-6, 1.0, 121)  # 20 points per decade
    x = np.log10(lrs)
    loss = 2.0 + 8.0 / (1.0 + np.exp(4.0 * (x + 3.0))) + 50.0 * np.clip(x + 1.5, 0.0, None) ** 2
    return lrs, loss


def test_the_rule_picks_the_steepest_descent_and_the_minimum_over_the_divisor_on_a_synthetic_curve() -> None:
    lrs, loss = _synthetic_curve()
    found = lr_candidates(lrs, loss, 3.0)
    step = 10 ** (1 / 20)  # one grid point
    assert 1e-3 / step <= found["steepest"] <= 1e-3 * step
    assert 10**-1.5 / step <= found["min_loss_lr"] <= 10**-1.5 * step
    assert found["min_over"] == pytest.approx(found["min_loss_lr"] / 3.0)
    lr, text = suggest_lr(lrs, loss, "steepest", 3.0)
    assert lr == found["steepest"] and "steepest" in text
    lr, text = suggest_lr(lrs, loss, "min_over", 3.0)
    assert lr == found["min_over"] and "divided by 3" in text


def test_a_curve_that_never_falls_has_no_steepest_point_and_says_so() -> None:
    lrs = np.geomspace(1e-3, 1.0, 10)
    found = lr_candidates(lrs, np.linspace(1.0, 5.0, 10), 10.0)
    assert found["steepest"] is None
    lr, text = suggest_lr(lrs, np.linspace(1.0, 5.0, 10), "steepest", 10.0)
    assert lr == pytest.approx(1e-4) and "never fell" in text


def test_a_diverging_sweep_ends_early_and_suggests_below_the_divergence(params, tiny_store) -> None:
    p = tiny_params(params)
    cfg = dataclasses.replace(lr_find_config(p), start_lr=1e-4, end_lr=1e3, steps=40)
    report = lr_find(p, tiny_store, cfg, progress=False)
    assert report["steps_run"] < 40 and report["stopped"]["reason"] != "end_lr reached"
    assert report["suggested_lr"] < report["stopped"]["lr"]
    assert all(np.isfinite(report["smoothed"]))


def test_the_command_writes_the_json_and_the_figure(params, tiny_store, tmp_path, capsys) -> None:
    from pipeline.lr_find import main

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(params)), encoding="utf-8")
    out, figure = tmp_path / "reports" / "lr_find.json", tmp_path / "reports" / "figures" / "lr_find.png"
    argv = ["--params", str(params_file), "--features", str(tiny_store), "--out", str(out), "--figure", str(figure)]
    assert main([*argv, "--steps", "8", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    cfg = lr_find_config(params)
    assert report["lrs"] == pytest.approx(list(sweep_lrs(cfg.start_lr, cfg.end_lr, 8))[: report["steps_run"]])
    assert report["rule"] == cfg.rule and report["configured_lr"] == tiny_params(params)["train"]["lr"]
    assert set(report["candidates"]) == {"min_loss_lr", "min_over", "steepest"}
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert f"dvc exp run -S train.lr={report['suggested_lr']:.1e}" in capsys.readouterr().out


def test_a_sweep_of_too_few_steps_is_refused(params) -> None:
    with pytest.raises(ConfigError, match="lr_find.steps"):
        dataclasses.replace(lr_find_config(params), steps=1)


REPORT = {"suggested_lr": 1e-3, "configured_lr": 1e-3, "rule": "min_over", "rule_text": "min_over: min LR / 3"}


@pytest.mark.parametrize("configured", [8e-5, 6e-3])
def test_doctor_warns_when_train_lr_is_more_than_5x_from_the_suggestion(configured: float) -> None:
    (check,) = check_lr_find(REPORT, configured)
    assert check.verdict == WARNING and check.fix == "dvc exp run -S train.lr=1.0e-03"


@pytest.mark.parametrize("configured", [3e-4, 1e-3, 4e-3])
def test_doctor_is_ok_when_train_lr_is_within_5x_of_the_suggestion(configured: float) -> None:
    (check,) = check_lr_find(REPORT, configured)
    assert check.verdict == OK and not check.fix


def test_doctor_without_a_report_says_how_to_make_one(tmp_path: Path) -> None:
    (check,) = check_lr_find(None, 8e-5)
    assert check.verdict == OK and "hamgara lr-find" in check.evidence
