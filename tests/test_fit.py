"""The training loop: it trains, logs, checkpoints, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_params
from pipeline.training.loop import fit


def weights(models) -> torch.Tensor:
    state = torch.load(models / "last.pt", weights_only=True)["trainer"]["model"]
    return torch.cat([v.flatten().float() for v in state.values()])


def test_a_run_trains_logs_and_saves_checkpoints(tiny_store, tmp_path, params) -> None:
    summary = fit(tiny_store, tiny_params(params), tmp_path / "models", tmp_path / "dvclive", progress=False)
    assert summary["steps"] == 6
    assert (tmp_path / "models" / "best.pt").is_file()
    metrics = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())
    assert "val_mel_loss" in metrics and "train" in metrics and "mel" in metrics["train"]["raw"]
    ckpt = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert ckpt["symbols"] and ckpt["mel_mean"] and ckpt["model_config"]["decoder"] == "autoregressive"


def test_the_last_step_is_validated_when_max_steps_is_not_a_multiple_of_val_every(tiny_store, tmp_path, params) -> None:
    # val_every 10 > max_steps 5: without the final validation there would be no best.pt at all
    fit(tiny_store, tiny_params(params, val_every=10, max_steps=5), tmp_path / "m", tmp_path / "live", progress=False)
    assert torch.load(tmp_path / "m" / "best.pt", weights_only=True)["step"] == 5


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_store, tmp_path, params) -> None:
    p = tiny_params(params)
    fit(tiny_store, p, tmp_path / "a", tmp_path / "live_a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, p, tmp_path / "b", tmp_path / "live_b", progress=False, stop_after=3)
    summary = fit(tiny_store, p, tmp_path / "b", tmp_path / "live_b", progress=False)
    assert summary["steps"] == 6
    assert torch.equal(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_other_settings_start_fresh_and_keep_the_old_checkpoint(tiny_store, tmp_path, params, capsys) -> None:
    fit(tiny_store, tiny_params(params), tmp_path / "m", tmp_path / "live", progress=False)
    fit(tiny_store, tiny_params(params, mel_loss_weight=35.0), tmp_path / "m", tmp_path / "live2", progress=False)
    out = capsys.readouterr().out
    assert "not resuming" in out and "train.mel_loss_weight" in out
    assert len(list((tmp_path / "m").glob("last-*.pt"))) == 1
