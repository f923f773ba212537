"""The training loop: it trains, logs, checkpoints, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_params
from pipeline.training import loop
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


def test_dvclive_syncs_in_full_only_at_validations_and_logs_every_step(
    tiny_store, tmp_path, params, monkeypatch
) -> None:
    # dvclive's next_step re-reads every metric table for DVC Studio, a cost growing with the
    # run; the loop must call it at validations only, and still write one row per step.
    from dvclive import Live

    calls: list[int] = []
    real = Live.next_step

    def counting(self: Live) -> None:
        calls.append(self.step)
        real(self)

    monkeypatch.setattr(Live, "next_step", counting)
    fit(tiny_store, tiny_params(params, val_every=3, max_steps=7), tmp_path / "m", tmp_path / "live", progress=False)
    assert calls == [2, 5, 6]  # optimizer steps 3, 6 and the last (7), at dvclive steps k - 1
    rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == list(range(7))


def test_the_dvclive_history_is_the_one_a_full_sync_every_step_writes(
    tiny_store, tmp_path, params, monkeypatch
) -> None:
    p = tiny_params(params, val_every=3, max_steps=7)
    fit(tiny_store, p, tmp_path / "m", tmp_path / "live", progress=False)
    monkeypatch.setattr(loop, "_end_live_step", lambda live, validated: live.next_step())
    fit(tiny_store, p, tmp_path / "m2", tmp_path / "live_every_step", progress=False)

    def files(d):
        return {f.relative_to(d): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}

    timed = ("wall_seconds", "frames_per_s")  # clock readings: the only values two runs may differ in

    def drop_wall_time(text: bytes) -> dict:
        summary = json.loads(text)
        for key in timed:
            summary.pop(key, None)
            summary.get("train", {}).pop(key, None)
            summary.get("val", {}).pop(key, None)
        return summary

    ours, every = files(tmp_path / "live"), files(tmp_path / "live_every_step")
    assert ours.keys() == every.keys()
    for name in ours:
        if name.name == "metrics.json":
            assert drop_wall_time(ours[name]) == drop_wall_time(every[name])
        elif name.stem not in timed:
            assert ours[name] == every[name], name


def test_loader_workers_start_from_the_fork_server_and_train_the_same_weights(tiny_store, tmp_path, params) -> None:
    # By its first epoch the training process runs dvclive's, tqdm's and zarr's threads: its
    # DataLoader workers must not be forked from it (issue 29), and the batches they read are
    # the ones the main process would read itself.
    from pipeline.config import train_config
    from pipeline.training.distributed import DistContext

    p = tiny_params(params, num_workers=2, max_steps=4)
    _, _, loader_kw = loop.training_data(tiny_store, train_config(p), torch.device("cpu"), DistContext())
    assert loader_kw["multiprocessing_context"].get_start_method() == "forkserver"
    fit(tiny_store, p, tmp_path / "workers", tmp_path / "live_w", progress=False)
    fit(
        tiny_store,
        tiny_params(params, num_workers=0, max_steps=4),
        tmp_path / "inline",
        tmp_path / "live_i",
        progress=False,
    )
    assert torch.equal(weights(tmp_path / "workers"), weights(tmp_path / "inline"))
