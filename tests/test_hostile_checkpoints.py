"""Hostile and damaged checkpoints: no code in a checkpoint ever runs, a damaged last.pt is set
aside (never deleted) and training starts fresh, and a resume after a kill logs no step twice."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import committed_params, table_steps, tiny_params
from pipeline.synth import main as synth_main
from pipeline.training.checkpoint import CheckpointError, load_checkpoint
from pipeline.training.loop import fit, trim_history


class TouchOnLoad:
    """Unpickling this creates `marker`: what a malicious checkpoint would do, made harmless."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def crafted(path: Path, marker: Path, base: dict | None = None) -> Path:
    """A checkpoint (by default a bare one) carrying a TouchOnLoad payload."""
    # The payload is live: unpickling it really does create the marker.
    pickle.loads(pickle.dumps(TouchOnLoad(marker)))
    assert marker.exists()
    marker.unlink()
    torch.save({**(base or {"model": {}}), "payload": TouchOnLoad(marker)}, path)
    return path


@pytest.fixture(scope="module")
def interrupted_run(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/last.pt of a tiny run stopped after 2 of its 4 steps (a real, resumable one)."""
    root = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, four_steps(committed_params()), root / "models", root / "live", progress=False, stop_after=2)
    return root / "models" / "last.pt"


def four_steps(params: dict) -> dict:
    return tiny_params(params, max_steps=4)


def test_a_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path) -> None:
    marker = tmp_path / "marker"
    path = crafted(tmp_path / "voice.pt", marker)
    with pytest.raises(CheckpointError, match="not a safe Hamgara checkpoint: .*it was not loaded") as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ")
    assert not marker.exists()


def test_synth_refuses_a_crafted_checkpoint_with_exit_code_2(tmp_path, capsys) -> None:
    marker = tmp_path / "marker"
    path = crafted(tmp_path / "voice.pt", marker)
    rc = synth_main(["Hello.", "--checkpoint", str(path), "-o", str(tmp_path / "out.wav")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{path}: not a safe Hamgara checkpoint" in err and "it was not loaded" in err
    assert not marker.exists() and not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "the file is empty"),
        (b"\x80\x02garbage\xff" * 50, "not a (safe|readable)"),
        (b"hello\n", "not a readable"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error_naming_it(tmp_path, content, reason) -> None:
    path = tmp_path / "voice.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def damage(kind: str, last: Path, good: Path, marker: Path) -> None:
    """Plant a damaged models/last.pt: cut in half, random bytes, a good one carrying a payload,
    or weights without the training state (a best.pt copied over it)."""
    data = good.read_bytes()
    if kind == "truncated":
        last.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        last.write_bytes(bytes(range(256)) * 8)
    elif kind == "crafted":
        crafted(last, marker, torch.load(good, weights_only=True))
    else:  # weights only
        ckpt = torch.load(good, weights_only=True)
        torch.save({k: v for k, v in ckpt.items() if k not in ("trainer", "identity")} | {"model": {}}, last)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "crafted", "weights_only"])
def test_a_damaged_last_pt_is_set_aside_and_training_starts_fresh(
    kind, interrupted_run, tiny_store, tmp_path, params, capsys
) -> None:
    models, marker = tmp_path / "models", tmp_path / "marker"
    models.mkdir()
    damage(kind, models / "last.pt", interrupted_run, marker)
    planted = (models / "last.pt").read_bytes()
    summary = fit(tiny_store, four_steps(params), models, tmp_path / "live", progress=False)
    out = capsys.readouterr().out
    assert summary["steps"] == 4 and "resuming" not in out
    assert len(table_steps(tmp_path / "live")["train/loss.tsv"]) == 4  # all four steps ran here
    kept = list(models.glob("last.pt.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == planted
    warning = [line for line in out.splitlines() if "warning" in line]
    assert len(warning) == 1 and str(models / "last.pt") in warning[0] and str(kept[0]) in warning[0]
    assert "starting fresh" in warning[0]
    assert not marker.exists()


def test_a_resume_after_a_kill_logs_no_step_twice(tiny_store, tmp_path, params) -> None:
    p = tiny_params(params, max_steps=6, val_every=1)
    fit(tiny_store, p, tmp_path / "a", tmp_path / "live_a", progress=False)
    models, live = tmp_path / "b", tmp_path / "live_b"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, p, models, live, progress=False, stop_after=2)
    shutil.copy(models / "last.pt", tmp_path / "at_step_2.pt")
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, p, models, live, progress=False, stop_after=2)
    # As if killed at step 4 after the checkpoint at step 2: steps 3-4 are logged, not saved.
    shutil.copy(tmp_path / "at_step_2.pt", models / "last.pt")
    fit(tiny_store, p, models, live, progress=False)
    resumed, straight = table_steps(live), table_steps(tmp_path / "live_a")
    assert resumed == straight and resumed["val_mel_loss.tsv"] == list(range(6))


def test_trimming_the_history_drops_later_and_half_written_rows(tmp_path) -> None:
    table = tmp_path / "plots" / "metrics" / "train" / "loss.tsv"
    table.parent.mkdir(parents=True)
    table.write_text("step\tloss\n0\t5.0\n1\t4.0\n2\t3.0\n3\t2.0\n4\t1", encoding="utf-8")
    (tmp_path / "metrics.json").write_text(json.dumps({"train": {"loss": 1.0}, "step": 4, "note": "x"}))
    trim_history(tmp_path, 3)
    assert table_steps(tmp_path) == {"train/loss.tsv": [0, 1, 2]}
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"train": {"loss": 3.0}, "step": 2, "note": "x"}


def test_a_temp_file_left_by_a_killed_checkpoint_write_is_removed(tiny_store, tmp_path, params) -> None:
    models = tmp_path / "models"
    models.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = models / f".last.pt.tmp-{int(gone.stdout)}"
    stale.write_bytes(b"half a checkpoint")
    user = models / "notes.txt"
    user.write_text("mine", encoding="utf-8")
    fit(tiny_store, tiny_params(params, max_steps=1), models, tmp_path / "live", progress=False)
    assert not stale.exists()
    assert user.read_text(encoding="utf-8") == "mine"
