"""benchmarks/cuda_check.py, the script a lent GPU runs: its sections run on the CPU too (on the
tiny store), so a broken section is caught here, not in the few minutes a GPU is lent."""

from __future__ import annotations

import json
import math

from benchmarks.cuda_check import (
    PRECISIONS,
    Report,
    precision_agreement,
    step_times,
    vocoder_section,
    with_demo_overrides,
)
from benchmarks.decoders import cpu_demo
from helpers import TINY_VOCODER, committed_params


def test_the_checked_configuration_is_the_demos() -> None:
    params = with_demo_overrides(committed_params())
    assert params["train"]["max_steps"] == int(cpu_demo()["train.max_steps"])
    assert params["model"]["reduction"] == int(cpu_demo()["model.reduction"])


def test_every_precision_of_the_gpu_check_is_named_for_its_device() -> None:
    # cuda_fp16 is the path of a GPU without bf16 (GradScaler on): it must stay in the check.
    assert {name.split("_")[0] for name in PRECISIONS} == {"cuda", "cpu"}
    assert PRECISIONS["cuda_fp16"] == ("cuda", True, False)


def test_precision_agreement_runs_real_steps_and_compares_against_the_reference(tiny_store) -> None:
    params = with_demo_overrides(committed_params())
    params["train"]["device"] = "cpu"
    out = precision_agreement(params, tiny_store, 2, ["cpu_fp32"])
    run = out["runs"]["cpu_fp32"]
    assert len(run["losses"]) == 2 and run["all_finite"] and run["skipped_steps"] == 0
    assert math.isfinite(run["initial_eval_loss"]) and run["initial_eval_rel_diff"] == 0.0


def test_step_times_times_each_batch_twice(tiny_store) -> None:
    params = with_demo_overrides(committed_params())
    params["train"]["device"] = "cpu"
    out = step_times(params, tiny_store, "parallel", False, True, 2, profile=False)
    assert len(out["first_pass"]) == len(out["second_pass"]) == 2
    assert all(t > 0 for t in out["first_pass"] + out["second_pass"])


def test_profiled_steps_are_left_out_of_the_first_seen_times(tiny_store) -> None:
    # The profiled batches have been seen by then: timing them again as "first seen" would mix
    # repeated shapes into the first pass.
    params = with_demo_overrides(committed_params())
    params["train"]["device"] = "cpu"
    out = step_times(params, tiny_store, "parallel", False, True, 4, profile=True)
    assert len(out["first_pass"]) == 1 and len(out["second_pass"]) == 4
    assert out["top"] and all(row["calls"] > 0 for row in out["top"])


def test_a_failing_section_is_recorded_and_the_next_still_runs(tmp_path) -> None:
    report = Report(tmp_path / "check.json", budget=60.0)
    report.section("broken", lambda: 1 / 0)
    report.section("fine", lambda: {"x": 1})
    report.section("late", lambda: None, needs=1e9)
    data = json.loads((tmp_path / "check.json").read_text())["sections"]
    assert "ZeroDivisionError" in data["broken"]["error"]
    assert data["fine"]["result"] == {"x": 1}
    assert "skipped" in data["late"]


def test_the_vocoder_section_trains_and_scores_against_griffin_lim(tiny_store) -> None:
    params = with_demo_overrides(committed_params())
    params["vocoder"].update(TINY_VOCODER)
    params["eval"]["griffin_lim_iters"] = 2
    out = vocoder_section(params, tiny_store, tiny_store.parent / "manifest.parquet", "cpu", 2)
    assert out["steps"] == 2 and out["steps_per_second"] > 0
    for name in ("trained", "griffin_lim"):
        assert {"pesq_wb", "estoi", "mcd", "rtf_one_thread"} <= set(out[name]), name
        assert all(math.isfinite(v) for v in out[name].values()), name


def test_the_recipe_is_the_committed_params_at_the_base_size(tmp_path) -> None:
    import yaml

    from benchmarks.cuda_check import recipe_params

    committed = committed_params()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(committed))
    recipe = recipe_params(path, "cuda")
    assert recipe["model"]["size"] == "base" and recipe["train"]["device"] == "cuda"
    for key in ("batch_size", "grad_accumulation", "num_workers", "mixed_precision", "lr"):
        assert recipe["train"][key] == committed["train"][key], key


def test_the_recipe_section_runs_the_train_stage_and_times_the_step(tiny_store, tmp_path) -> None:
    from benchmarks.cuda_check import recipe_section
    from helpers import tiny_params

    params = tiny_params(committed_params(), max_steps=3)
    result = recipe_section(params, tiny_store, tmp_path / "work", 300, tmp_path / "out", steps=3, modes=("eager",))
    stage = result["train_stage"]
    assert stage["returncode"] == 0 and not stage["stopped_by_sigterm"] and stage["steps"] == 3
    eager = result["in_process"]["eager"]
    assert eager["steps_per_s"] > 0 and len(eager["loss"]) == 3 and all(math.isfinite(x) for x in eager["loss"])
    assert not (tmp_path / "out" / "recipe" / "train_run.tar.gz").exists()  # no archive of a base-size run
