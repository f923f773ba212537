"""Convergence figures from the dvclive history."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.history import convergence, curve_area, steps_to_target


def test_steps_to_target_is_the_first_step_whose_smoothed_loss_reaches_it() -> None:
    steps = np.array([100, 200, 300, 400])
    values = np.array([0.5, 0.2, 0.3, 0.2])
    assert steps_to_target(steps, values, 0.3, weight=1.0) == 200
    # smoothed (EMA 0.5): 0.5, 0.35, 0.325, 0.2625 -> reaches 0.3 only at 400
    assert steps_to_target(steps, values, 0.3, weight=0.5) == 400


def test_a_target_never_reached_gives_none() -> None:
    assert steps_to_target(np.array([1, 2]), np.array([0.9, 0.8]), 0.1, weight=1.0) is None


def test_curve_area_is_the_mean_height_so_an_early_drop_scores_lower() -> None:
    steps = np.array([0, 100, 200])
    assert np.isclose(curve_area(steps, np.array([1.0, 1.0, 1.0])), 1.0)
    fast = curve_area(steps, np.array([1.0, 0.2, 0.2]))
    slow = curve_area(steps, np.array([1.0, 1.0, 0.2]))
    assert fast < slow


def test_convergence_reads_the_dvclive_tsv_files(tmp_path) -> None:
    metrics = tmp_path / "plots" / "metrics"
    (metrics / "val").mkdir(parents=True)
    (metrics / "val_mel_loss.tsv").write_text("step\tval_mel_loss\n9\t0.5\n19\t0.2\n")
    (metrics / "val" / "wall_seconds.tsv").write_text("step\twall_seconds\n9\t10.0\n19\t21.5\n")
    c = convergence(tmp_path, target=0.3, weight=1.0)
    assert c["steps_to_target"] == 19 and c["seconds_to_target"] == 21.5 and c["wall_seconds"] == 21.5
    assert c["best_val_mel_loss"] == 0.2 and c["validations"] == 2
