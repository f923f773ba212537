"""benchmarks/speaker_balance.py: its runs are the multi-speaker demo plus exactly the balance and
seed they name, and it reads the per-speaker figures evaluate writes."""

from __future__ import annotations

import json

from benchmarks.decoders import setup_array
from benchmarks.speaker_balance import figures, overrides, table


def test_a_run_is_the_multi_speaker_demo_with_its_balance_and_seed() -> None:
    o = overrides(0.5, 7)
    assert {k: o[k] for k in setup_array("MULTI_DEMO")} == setup_array("MULTI_DEMO")
    assert o["train.speaker_balance"] == "0.5" and o["train.seed"] == "7"
    assert o["train.max_steps"] == setup_array("CPU_DEMO")["train.max_steps"]


def test_figures_reads_each_speakers_gap_and_margin_ratio(tmp_path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    per = {"utterances": 3, "wer": {"gap": 0.2, "truth": 0.3}}
    sim_block = {"margin_ratio": 0.5, "synthesized": {"identification": 1.0}}
    eval_json = {
        "wer": {"gap": 0.25},
        "stop": {"on_time": 6},
        "per_speaker": {"demo": per, "p301": {**per, "wer": {"gap": 0.4, "truth": 0.45}}},
        "speaker_similarity": {
            "margin_ratio": 0.7,
            "synthesized": {"identification": 1.0},
            "per_speaker": {"demo": sim_block, "p301": {**sim_block, "margin_ratio": 0.25}},
        },
    }
    (reports / "eval.json").write_text(json.dumps(eval_json))
    row = figures(tmp_path, 0.5, 7, 12.0)
    assert row["speakers"]["p301"] == {
        "utterances": 3,
        "wer_gap": 0.4,
        "wer_truth": 0.45,
        "margin_ratio": 0.25,
        "identification": 1.0,
    }
    assert row["margin_ratio"] == 0.7 and row["wer_gap"] == 0.25
    assert "| 0.5 | 7 | p301 | 0.400 | 0.450 | 0.250 | 1.000 |" in table([row])
