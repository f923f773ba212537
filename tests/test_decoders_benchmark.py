"""benchmarks/decoders.py: its runs are the demo's budget plus exactly the overrides they name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.decoders import REMEDIES, RUNS, cpu_demo, set_param, step_cost_path
from helpers import committed_params


def test_the_runs_use_setup_sh_demo_budget() -> None:
    demo = cpu_demo()
    assert demo["train.max_steps"] == "4400" and demo["train.batch_size"] == "16"


def test_every_run_pins_the_attention_dropout_it_was_measured_with() -> None:
    # CPU_DEMO turned attention dropout off after these runs were measured with 0.1: a run that
    # inherited it would no longer be the run its figures describe.
    for name, run in RUNS.items():
        without = name in ("ar-demo-no-attention-dropout", "ar-demo-4400")
        assert run["model.attention_dropout"] == ("0" if without else "0.1"), name


def test_the_runs_measured_on_the_old_parallel_budget_keep_it() -> None:
    # The runs before the demo moved to the autoregressive decoder were 2,000 steps at r = 2;
    # a new CPU_DEMO must not change what their names mean.
    for name in RUNS:
        if name != "ar-r3-sampling-full-2800" and not name.startswith("ar-demo-"):
            assert RUNS[name]["train.max_steps"] == "2000" and RUNS[name]["train.restart_period"] == "1800", name
            assert RUNS[name]["model.reduction"] == ("3" if name.startswith("ar-r3") else "2"), name


def test_each_ablation_switches_off_exactly_one_remedy() -> None:
    full = RUNS["ar-remedies"]
    for name in ("ar-no-aligned", "ar-no-sampling"):
        changed = {k for k in full if RUNS[name][k] != full[k]}
        assert len(changed) == 1 and changed <= set(REMEDIES), name


def test_each_ablation_of_the_demo_changes_exactly_one_thing_of_its_configuration() -> None:
    demo = RUNS["ar-r3-sampling-full-2800"]
    expected = {
        "ar-demo-no-aligned": {"model.aligned_conditioning": "false"},
        "ar-demo-no-sampling": {"train.scheduled_sampling": "0"},
        "ar-demo-r2": {"model.reduction": "2"},
        "ar-demo-no-attention-dropout": {"model.attention_dropout": "0"},
        "ar-demo-lr-find": {"train.lr": "1.7e-3"},
    }
    for name, change in expected.items():
        assert {k: v for k, v in RUNS[name].items() if demo.get(k) != v} == change, name
        assert RUNS[name]["train.max_steps"] == "2800", name  # the demo's own budget


def test_the_frame_window_run_changes_only_the_window_of_the_parallel_run() -> None:
    parallel, window = RUNS["parallel"], RUNS["parallel-window64"]
    assert {k: v for k, v in window.items() if parallel.get(k) != v} == {"model.frame_attention_window": "64"}


def test_overrides_are_written_as_dvc_would() -> None:
    params = committed_params()
    set_param(params, "train.lr", "1e-3")  # YAML 1.1 reads this as text; DVC writes a number
    set_param(params, "model.aligned_conditioning", "true")
    assert params["train"]["lr"] == 0.001 and params["model"]["aligned_conditioning"] is True
    yaml.safe_dump(params)


def test_step_cost_keeps_the_default_file_and_names_another_after_its_results() -> None:
    # The committed decoders_step_cost.json must not be overwritten by a measurement of other runs.
    results = Path("benchmarks/results")
    assert step_cost_path(results / "decoders.json") == results / "decoders_step_cost.json"
    assert step_cost_path(results / "issue16.json") == results / "issue16_step_cost.json"


def test_with_overrides_returns_a_changed_copy_and_leaves_the_params_alone() -> None:
    from benchmarks.decoders import parse_sets, with_overrides

    params = committed_params()
    before = params["train"]["lr"]
    changed = with_overrides(params, parse_sets(["train.lr=1.7e-3", "data.speaker_regex=^(p\\d+)_=x"]))
    assert changed["train"]["lr"] == 1.7e-3 and params["train"]["lr"] == before
    assert changed["data"]["speaker_regex"] == "^(p\\d+)_=x"  # only the first '=' splits


def test_a_set_without_an_equals_sign_is_a_usage_error_naming_it() -> None:
    from benchmarks.decoders import parse_sets

    with pytest.raises(SystemExit, match="'train.lr'"):
        parse_sets(["train.lr"])
