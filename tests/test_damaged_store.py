"""A damaged features store, found by doctor and said in one line by whoever reads it; a full
disk met by zarr's own writes named by the store's path (issue 29, "Hostile input, round 2")."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
import zarr
from torch.utils.data import DataLoader

from helpers import tiny_params
from pipeline.common import atomic
from pipeline.common.stage import EXIT_BAD_INPUT, run_stage
from pipeline.config import train_config
from pipeline.doctor import main as doctor_main
from pipeline.evaluation.data_checks import check_store_integrity
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING
from pipeline.features.store import DamagedStoreError, FeatureWriter
from pipeline.training.distributed import DistContext
from pipeline.training.loop import fit, training_data

FIX = "rerun `dvc repro precompute --force`"


def chunk_file(store: Path, array: str, chunk: int) -> Path:
    """The file of chunk `chunk` (along the first axis) of `array`, as zarr 3 names it."""
    extra = "/0" if zarr.open_array(str(store / array), mode="r").ndim == 2 else ""
    return store / array / "c" / f"{chunk}{extra}"


def cut_short(path: Path) -> None:
    """Half of the file's bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damaged_copy(tiny_store: Path, root: Path, array: str, chunk: int) -> Path:
    """A copy of the tiny store with one chunk of `array` cut short."""
    store = root / "features.zarr"
    shutil.copytree(tiny_store, store)
    assert chunk_file(store, array, chunk).is_file()
    cut_short(chunk_file(store, array, chunk))
    return store


def doctor(store: Path, root: Path, *args: str) -> int:
    """`hamgara doctor` on `store`, with clean validate and precompute reports and nothing of
    the workspace (no checkpoint, run or manifest: those checks say so)."""
    reports = clean_reports(root / "reports")
    paths = ["--checkpoint", str(root / "best.pt"), "--run", str(root / "dvclive")]
    return doctor_main(
        ["--reports", str(reports), "--features", str(store), "--manifest", str(root / "m.parquet"), *paths, *args]
    )


def clean_reports(reports: Path) -> Path:
    reports.mkdir()
    validation = {"rows": 12, "accepted": 12, "rejected": 0, "rejected_share": 0.0, "sample_rates": {"22050": 12}}
    (reports / "validation.json").write_text(json.dumps(validation))
    (reports / "precompute.json").write_text(json.dumps({"utterances": 12, "align": {"flagged_ids": []}}))
    return reports


# --- doctor -------------------------------------------------------------------------------------


def test_a_damaged_chunk_is_named_with_array_chunk_and_file(tiny_store, tmp_path) -> None:
    store = damaged_copy(tiny_store, tmp_path, "mel", 1)
    [check] = check_store_integrity(store)
    assert check.verdict == PROBLEM and check.fix == FIX
    assert "array mel, chunk 1 (rows 2048:" in check.evidence
    assert str(chunk_file(store, "mel", 1)) in check.evidence
    assert "chunk 0" not in check.evidence and "\n" not in check.evidence


def test_an_intact_store_passes_the_integrity_check(tiny_store) -> None:
    assert [c.verdict for c in check_store_integrity(tiny_store)] == [OK]


def test_doctor_on_a_store_damaged_past_chunk_0_reports_the_problem(tiny_store, tmp_path, capsys) -> None:
    store = damaged_copy(tiny_store, tmp_path, "mel", 1)
    rc = doctor(store, tmp_path, "--overfit-steps", "0")
    assert rc == 4
    checks = {c["name"]: c for c in json.loads((tmp_path / "reports" / "doctor.json").read_text())["checks"]}
    assert checks["store integrity"]["verdict"] == PROBLEM
    assert str(chunk_file(store, "mel", 1)) in capsys.readouterr().out


def test_doctor_writes_its_report_on_a_store_whose_damage_its_own_checks_would_read(
    tiny_store, tmp_path, params
) -> None:
    """The symbol coverage reads every training utterance's tokens, the model checks a batch:
    on a damaged store they are not run, and the report is written rather than stopped."""
    store = damaged_copy(tiny_store, tmp_path, "tokens", 0)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(params)), encoding="utf-8")
    rc = doctor(store, tmp_path, "--params", str(params_file))
    assert rc == 4
    checks = {c["name"]: c for c in json.loads((tmp_path / "reports" / "doctor.json").read_text())["checks"]}
    assert checks["store integrity"]["verdict"] == PROBLEM
    assert "array tokens, chunk 0" in checks["store integrity"]["evidence"]
    assert checks["model checks"]["verdict"] == WARNING and FIX in checks["model checks"]["fix"]


# --- training's reads ---------------------------------------------------------------------------


def read_every_training_batch(store: Path, params: dict) -> None:
    """One epoch of the training split through training's own dataset, sampler and loader
    settings, in this process (num_workers 0)."""
    cfg = train_config(tiny_params(params, num_workers=0))
    dataset, sampler, loader_kw = training_data(store, cfg, torch.device("cpu"), DistContext())
    for _ in DataLoader(dataset, batch_sampler=sampler.batches(0), **loader_kw):
        pass


@pytest.fixture
def damaged_mel(tiny_store, tmp_path) -> Path:
    """Mel chunk 1 cut short, and at least one training utterance in it."""
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore

    store = damaged_copy(tiny_store, tmp_path, "mel", 1)
    fs = FeatureStore(tiny_store)
    ends = fs.mel_offsets[1:]
    assert np.any((ends > 2048) & (fs.array("split") == TRAIN))
    return store


def test_a_damaged_chunk_read_in_training_is_one_line_naming_store_array_chunk_and_fix(damaged_mel, params) -> None:
    with pytest.raises(DamagedStoreError) as error:
        read_every_training_batch(damaged_mel, params)
    message = str(error.value)
    assert message.startswith(f"{damaged_mel}: ") and "\n" not in message
    assert "array mel, chunk 1 (rows 2048:" in message and str(chunk_file(damaged_mel, "mel", 1)) in message
    assert message.endswith(FIX)


def test_a_damaged_chunk_stops_training_with_exit_code_2(damaged_mel, params, tmp_path, capsys) -> None:
    p = tiny_params(params, num_workers=0)
    rc = run_stage(
        "train", lambda: fit(damaged_mel, p, tmp_path / "models", tmp_path / "dvclive", progress=False) and 0
    )
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "array mel, chunk 1" in err and FIX in err and "Traceback" not in err


def test_a_loader_worker_rebuilds_the_error_from_its_message_alone(damaged_mel, params) -> None:
    """A DataLoader worker's exception reaches the main process as its type called with one
    multi-line string; the original message stays its last line."""
    from torch._utils import ExceptionWrapper

    try:
        read_every_training_batch(damaged_mel, params)
    except DamagedStoreError as e:
        original, wrapped = str(e), ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(DamagedStoreError) as error:
        wrapped.reraise()
    assert str(error.value).splitlines()[-1].endswith(f"DamagedStoreError: {original}")


# --- full disk ----------------------------------------------------------------------------------


def test_a_full_disk_met_by_zarr_names_the_partial_store_and_measures_its_filesystem(
    tmp_path, monkeypatch, capsys
) -> None:
    writer = FeatureWriter(tmp_path / "data" / "features.zarr", "fingerprint", n_mels=4, chunk_frames=8)

    async def full(self, key, value) -> None:  # zarr writes an open file: the OSError has no filename
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full)
    asked: list[Path] = []
    usage = SimpleNamespace(total=10**9, used=10**9 - 1_234_567, free=1_234_567)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: asked.append(Path(path)) or usage)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    item = {"id": "utt", "mel": np.zeros((5, 4), np.float32), "tokens": [1, 2], "trim_start": 0.0, "is_train": True}

    rc = run_stage("precompute", lambda: writer.append([item]) or 0)

    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT and err.count("\n") == 1
    assert f"{writer.partial}: no space left on the disk" in err and "1.2 MB free" in err
    assert asked == [writer.partial]
