"""The learning-rate schedule: warm-up, cosine with warm restarts, plateau scale, floor."""

from __future__ import annotations

import pytest

from pipeline.training.schedule import ScheduleConfig, cycle_position, lr_at

CFG = ScheduleConfig(
    lr=8e-5, warmup_steps=1500, restart_period=10000, restart_mult=2.0, min_lr=1e-7, kind="cosine_restarts"
)


def test_the_schedule_at_documented_steps(capsys: pytest.CaptureFixture[str]) -> None:
    steps = [0, 749, 1499, 1500, 6500, 11499, 11500, 21500, 31499, 31500]
    values = [lr_at(s, CFG) for s in steps]
    print("\n".join(f"step {s:>6}: lr {v:.3e}" for s, v in zip(steps, values)))  # the table, with -s
    assert values[0] == pytest.approx(1e-7 + (8e-5 - 1e-7) / 1500)
    assert values[2] == pytest.approx(8e-5)  # end of warm-up: the peak
    assert values[3] == pytest.approx(8e-5)  # first cosine step: the peak
    assert values[4] == pytest.approx(1e-7 + (8e-5 - 1e-7) * 0.5)  # half of the first 10k cycle
    assert values[5] < 2e-7  # end of the first cycle: near min_lr
    assert values[6] == pytest.approx(8e-5)  # warm restart
    assert values[7] == pytest.approx(1e-7 + (8e-5 - 1e-7) * 0.5)  # half of the 20k cycle
    assert values[9] == pytest.approx(8e-5)  # second restart after 10k + 20k


def test_warmup_is_linear() -> None:
    assert lr_at(299, CFG) - 1e-7 == pytest.approx(2 * (lr_at(149, CFG) - 1e-7))


def test_cycles_grow_by_the_multiplier() -> None:
    assert cycle_position(0, 100, 2.0) == (0, 100)
    assert cycle_position(100, 100, 2.0) == (0, 200)
    assert cycle_position(350, 100, 2.0) == (50, 400)


def test_a_plateau_scale_lowers_the_peak_but_never_below_the_floor() -> None:
    assert lr_at(1500, CFG, scale=0.7) == pytest.approx(0.7 * 8e-5)
    assert lr_at(1500, CFG, scale=1e-6) == pytest.approx(1e-7)
    assert all(lr_at(s, CFG, scale=0.7**k) >= 1e-7 - 1e-15 for s in range(0, 40000, 997) for k in range(30))


NOAM = ScheduleConfig(lr=1e-4, warmup_steps=400, restart_period=1, restart_mult=1.0, min_lr=1e-7, kind="noam")


def test_noam_warms_up_linearly_then_decays_as_inverse_square_root() -> None:
    assert lr_at(399, NOAM) == pytest.approx(1e-4)
    assert lr_at(199, NOAM) - 1e-7 == pytest.approx(0.5 * (1e-4 - 1e-7))
    assert lr_at(1599, NOAM) == pytest.approx(0.5e-4)  # 4x the warm-up: half the peak
    assert lr_at(10**9, NOAM) == pytest.approx(1e-7)  # never below the floor


def test_an_unknown_schedule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="train.lr_schedule: 'linear'"):
        ScheduleConfig(lr=1e-4, warmup_steps=1, restart_period=1, restart_mult=1.0, min_lr=0.0, kind="linear")
