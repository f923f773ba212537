"""Convergence monitors: EMA, slope and plateau, LR reduction on plateau, early stopping."""

from __future__ import annotations

import pytest

from pipeline.training.monitors import ConvergenceTracker, EarlyStopping, LossEMA, PlateauReducer


def test_ema_starts_at_the_first_value_and_moves_by_alpha() -> None:
    ema = LossEMA(0.08)
    assert ema.update(2.0) == 2.0
    assert ema.update(1.0) == pytest.approx(0.92 * 2.0 + 0.08 * 1.0)


def test_slope_of_a_falling_line_is_its_gradient_and_no_plateau() -> None:
    t = ConvergenceTracker(window=50, min_delta=1e-3)
    for i in range(60):
        t.update(5.0 - 0.01 * i)
    assert t.slope() == pytest.approx(-0.01)
    assert not t.plateau


def test_a_flat_loss_is_a_plateau_once_the_window_is_full() -> None:
    t = ConvergenceTracker(window=20, min_delta=1e-3)
    for _ in range(19):
        t.update(1.0)
    assert not t.plateau  # window not full yet
    t.update(1.0)
    assert t.plateau


def test_plateau_reducer_fires_after_patience_and_scales_by_the_factor() -> None:
    r = PlateauReducer(factor=0.7, patience=3, min_delta=1e-3)
    fired = [r.update(v) for v in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5]]
    assert fired == [False, False, False, False, True, False, False, False]
    assert r.scale == pytest.approx(0.7) and r.reductions == 1


def test_early_stopping_fires_after_patience_validations_without_improvement() -> None:
    stop = EarlyStopping(patience=3, min_delta=5e-5)
    results = [stop.update(v) for v in [1.0, 0.8, 0.79999, 0.8, 0.81]]
    assert results == [False, False, False, False, True]


def test_states_round_trip() -> None:
    a, b = PlateauReducer(0.7, 2, 0.0), PlateauReducer(0.7, 2, 0.0)
    for v in [1.0, 1.0]:
        a.update(v)
    b.load_state_dict(a.state_dict())
    assert a.update(1.0) == b.update(1.0) and a.scale == b.scale
    t1, t2 = ConvergenceTracker(5, 0.1), ConvergenceTracker(5, 0.1)
    for v in [3, 2, 1]:
        t1.update(v)
    t2.load_state_dict(t1.state_dict())
    assert t1.slope() == t2.slope()
