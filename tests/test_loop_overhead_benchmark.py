"""benchmarks/loop_overhead.py: its dvclive comparison times both closes on one growing history."""

from __future__ import annotations

from benchmarks.loop_overhead import TRAIN_METRICS, dvclive_close_costs


def test_both_closes_write_consecutive_steps_into_one_history(tmp_path) -> None:
    rows = dvclive_close_costs(history=8, probe=2, folder=tmp_path / "live")
    assert [r["history"] for r in rows] == [0, 6, 12]  # each mark's probes join the history
    assert all(r["next_step_ms"] > 0 and r["loop_ms"] > 0 for r in rows)
    tables = sorted((tmp_path / "live" / "plots" / "metrics" / "train").glob("*.tsv"))
    assert len(tables) == TRAIN_METRICS
    # three marks of three closes of 2 steps each, the history already past marks 4 and 8: 18 steps, each once
    steps = [int(line.split("\t")[0]) for line in tables[0].read_text().splitlines()[1:]]
    assert steps == list(range(18))
