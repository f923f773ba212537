"""One run at a time per output folder (pipeline/common/lock.py; issue 29): a second train,
precompute or evaluate on the same folders refuses at once, naming the folder and the process
that holds it; a lock whose owner died is free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.common.lock import FolderBusyError, folder_lock, lock_path

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from pathlib import Path
from pipeline.common.lock import folder_lock
with folder_lock(Path(sys.argv[1]), "train"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextmanager
def held_by_another_process(folder: Path) -> Iterator[subprocess.Popen]:
    """`folder`'s lock held by a live process of its own, until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_holder_is_refused_naming_the_folder_and_the_owner(tmp_path):
    folder = tmp_path / "models"
    with held_by_another_process(folder) as owner:
        with pytest.raises(FolderBusyError) as refused:
            with folder_lock(folder, "train"):
                pytest.fail("the lock was taken twice")
    message = str(refused.value)
    assert str(folder) in message and f"pid {owner.pid}" in message and "train" in message


def test_a_lock_whose_owner_was_killed_is_taken_over(tmp_path):
    folder = tmp_path / "models"
    with held_by_another_process(folder) as owner:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert lock_path(folder).exists()  # left behind by kill -9
        with folder_lock(folder, "train"):
            pass


def test_the_lock_is_released_and_its_file_removed_on_exit(tmp_path):
    folder = tmp_path / "reports"
    with folder_lock(folder, "evaluate"):
        assert lock_path(folder).exists()
    assert not lock_path(folder).exists()
    with folder_lock(folder, "evaluate"):  # free again
        pass


def test_the_lock_file_is_beside_the_folder_not_inside_it(tmp_path):
    # Inside, DVC would cache it with the folder's outputs.
    assert lock_path(tmp_path / "models") == tmp_path / ".models.hamgara-lock"


@pytest.mark.parametrize(
    "command, held, flags",
    [
        ("train", "models", ["--models", "{tmp}/models", "--live", "{tmp}/dvclive", "--features", "{tmp}/f.zarr"]),
        ("train", "dvclive", ["--models", "{tmp}/models", "--live", "{tmp}/dvclive", "--features", "{tmp}/f.zarr"]),
        ("precompute", "f.zarr", ["--out", "{tmp}/f.zarr", "--manifest", "{tmp}/m.parquet"]),
        ("evaluate", "reports", ["--reports", "{tmp}/reports", "--features", "{tmp}/f.zarr"]),
    ],
)
def test_a_second_run_of_a_stage_on_the_same_folder_refuses_at_once(tmp_path, capsys, command, held, flags):
    import importlib

    import yaml

    from helpers import committed_params

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(committed_params()), encoding="utf-8")
    main = importlib.import_module(f"pipeline.{command}").main
    with held_by_another_process(tmp_path / held) as owner:
        rc = main(["--params", str(params), *[f.format(tmp=tmp_path) for f in flags]])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{tmp_path / held} is in use by train (pid {owner.pid}" in err
    assert not os.path.exists(tmp_path / "models" / "last.pt")
