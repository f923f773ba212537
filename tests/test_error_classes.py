"""Every command's errors are classified by one table (pipeline/common/stage.py `classify`):
a user's mistake is one line and exit 2 or 3 wherever it is met, a bug keeps its traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import soundfile as sf
import torch

from pipeline.cli import MODULES, STAGES
from pipeline.common.stage import EXIT_ABORTED, EXIT_BAD_INPUT, run_stage

REPO = Path(__file__).resolve().parents[1]


def failing(e: BaseException):
    def work() -> int:
        raise e

    return work


def test_an_audio_file_libsndfile_cannot_read_is_one_line_naming_it(tmp_path, capsys):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are not samples", encoding="utf-8")
    assert run_stage("synth", lambda: sf.read(not_audio) and 0) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(not_audio) in err and "Traceback" not in err


def test_a_package_that_cannot_be_imported_is_named_with_the_fix(capsys):
    def work() -> int:
        import hamgara_no_such_package  # noqa: F401

        return 0

    assert run_stage("evaluate", work) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "hamgara_no_such_package" in err and "setup.sh" in err


def test_an_import_of_our_own_code_that_fails_is_a_bug_not_an_install_problem():
    def work() -> int:
        from pipeline.config import no_such_name  # noqa: F401

        return 0

    with pytest.raises(ImportError):
        run_stage("evaluate", work)


@pytest.mark.parametrize(
    "error", [MemoryError(), torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")]
)
def test_memory_exhausted_is_work_that_could_not_finish_naming_the_knob(capsys, error):
    assert run_stage("train", failing(error)) == EXIT_ABORTED
    assert "train.batch_size" in capsys.readouterr().err


def test_an_error_re_raised_from_a_loader_worker_is_said_as_the_worker_said_it(capsys):
    from torch._utils import ExceptionWrapper

    try:
        raise ValueError("data/features.zarr: damaged store: array mel, chunk 3")
    except ValueError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(ValueError) as raised:
        wrapped.reraise()
    assert "Original Traceback" in str(raised.value)  # what torch hands the main process
    assert run_stage("train", failing(raised.value)) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "train: error: data/features.zarr: damaged store: array mel, chunk 3\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(TypeError):
        run_stage("train", failing(TypeError("unsupported operand")))


@pytest.mark.parametrize("command", sorted(STAGES))
def test_every_command_runs_its_work_through_run_stage(command):
    # The table holds only if no command catches and prints errors its own way.
    module = REPO / "pipeline" / f"{MODULES.get(command, command)}.py"
    main = next(
        node
        for node in ast.parse(module.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef) and node.name == "main"
    )
    calls = {n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "run_stage" in calls
