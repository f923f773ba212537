"""The training step without host syncs: `Trainer.step_on_device` reads nothing from the device,
`Trainer.read_logs` reads every pending step at once, and reading late changes nothing."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmarks.host_sync import counting_reads
from helpers import committed_params, make_batch, small_config, tiny_params
from model.config import LossSettings, LossWeights
from model.tts import HamgaraTTS, TTSBatch
from pipeline.config import TrainConfig, train_config
from pipeline.training.loop import fit
from pipeline.training.step import Trainer, TrainingAborted

SETTINGS = LossSettings(0.6, 0.025, 0.06, 5.0, 0.0, 2)
WEIGHTS = LossWeights(mel=22.0, kl=1.8, stop=1.5, attention=0.3, duration=1.0)
CFG = dataclasses.replace(
    train_config(committed_params()),
    lr=1e-3,
    warmup_steps=2,
    grad_accumulation=2,
    kl_warmup_steps=4,
    convergence_window=4,
    adaptive_loss_weights=True,
    max_nonfinite=3,
)
CPU = torch.device("cpu")


def trainer(cfg: TrainConfig = CFG) -> Trainer:
    torch.manual_seed(0)
    return Trainer(HamgaraTTS(small_config("autoregressive")), cfg, SETTINGS, WEIGHTS, CPU)


def group(step: int) -> list[TTSBatch]:
    return [make_batch([6, 9], [20, 30], seed=2 * step), make_batch([7, 5], [25, 18], seed=2 * step + 1)]


def poisoned(step: int) -> list[TTSBatch]:
    """A group whose first micro-batch has a NaN in a mel: its loss is not finite."""
    g = group(step)
    g[0].mels[0, 3, 2] = float("nan")
    return g


def params_of(t: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.model.parameters()])


@pytest.fixture
def host_reads() -> Iterator[Counter[str]]:
    """Counts the calls of each Tensor method in SYNCS (patched with counting wrappers): the
    benchmark's own counter, so the test and benchmarks/host_sync.py count the same reads."""
    with counting_reads() as counts:
        yield counts


def test_a_step_on_the_device_reads_no_device_value_on_the_host(host_reads: Counter[str]) -> None:
    t = trainer()
    # The data come as CPU tensors: build them before counting.
    groups = [group(s) for s in range(3)]
    host_reads.clear()
    for g in groups:
        t.step_on_device(g)
    assert host_reads == Counter()


def test_reading_the_logs_is_one_transfer_for_all_pending_steps(host_reads: Counter[str]) -> None:
    t = trainer()
    for s in range(3):
        t.step_on_device(group(s))
    host_reads.clear()
    rows = t.read_logs()
    assert len(rows) == 3 and all("loss" in r for r in rows)
    assert host_reads == Counter({"tolist": 1})


def test_reading_every_ten_steps_gives_the_rows_and_weights_of_reading_every_step() -> None:
    # Each trainer built (seeded) right before its run: dropout draws from the global RNG.
    every_step = trainer()
    rows_1 = [every_step.train_step(group(s)) for s in range(12)]
    every_ten = trainer()
    rows_10: list[dict[str, float]] = []
    for s in range(12):
        every_ten.step_on_device(group(s))
        if (s + 1) % 10 == 0:
            rows_10 += every_ten.read_logs()
    rows_10 += every_ten.read_logs()
    assert rows_10 == rows_1  # bitwise: the same floats, not approximately
    assert torch.equal(params_of(every_ten), params_of(every_step))
    assert every_ten.ema.value == every_step.ema.value
    assert list(every_ten.tracker.values) == list(every_step.tracker.values)


def test_a_non_finite_loss_skips_the_update_on_the_device() -> None:
    t = trainer()
    t.step_on_device(group(0))
    weights = params_of(t).clone()
    moments = {k: v.clone() for k, v in t.opt.state[next(t.model.parameters())].items()}
    t.step_on_device(poisoned(1))
    assert torch.equal(params_of(t), weights)
    after = t.opt.state[next(t.model.parameters())]
    assert all(torch.equal(after[k], v) for k, v in moments.items())  # step count included
    assert float(after["step"]) == 1.0


def test_a_skipped_step_counts_in_skipped_steps_after_the_read() -> None:
    t = trainer()
    t.step_on_device(group(0))
    t.step_on_device(poisoned(1))
    t.step_on_device(group(2))
    assert t.skipped == 0  # nothing read yet
    rows = t.read_logs()
    assert [r["skipped_steps"] for r in rows] == [0, 1, 1]
    assert "loss" not in rows[1] and "loss" in rows[2]
    assert t.skipped == 1 and t.nonfinite_streak == 0


def test_max_nonfinite_skips_in_a_row_abort_at_the_read_naming_the_step() -> None:
    t = trainer()
    t.step_on_device(group(0))
    for s in range(1, 4):
        t.step_on_device(poisoned(s))  # the step itself never stops
    with pytest.raises(TrainingAborted, match="3 non-finite steps in a row at step 3"):
        t.read_logs()


def test_a_checkpoint_taken_with_steps_pending_resumes_exactly_and_keeps_their_rows() -> None:
    straight = trainer()
    for s in range(6):
        straight.step_on_device(group(s))
    interrupted = trainer()
    for s in range(3):
        interrupted.step_on_device(group(s))
    state = interrupted.state_dict()
    assert len(interrupted.read_logs()) == 3  # read by state_dict, still handed out
    resumed = trainer()
    resumed.load_state_dict(state)
    for s in range(3, 6):
        resumed.step_on_device(group(s))
    assert resumed.read_logs() == straight.read_logs()[3:]
    assert torch.equal(params_of(resumed), params_of(straight))
    assert resumed.adaptive is not None and straight.adaptive is not None
    assert resumed.adaptive.averages == straight.adaptive.averages


def test_the_loop_writes_the_same_dvclive_history_and_weights_whatever_log_every(
    tiny_store: Path, tmp_path: Path, params: dict
) -> None:
    # 7 steps, validated at 5 and 7: with log_every 4 the reads fall at 4, 5 (validation) and 7.
    runs = {}
    for every in (1, 4):
        p = tiny_params(params, val_every=5, max_steps=7, log_every=every)
        fit(tiny_store, p, tmp_path / f"m{every}", tmp_path / f"live{every}", progress=False)
        runs[every] = tmp_path / f"live{every}"

    def files(d: Path) -> dict[Path, bytes]:
        return {f.relative_to(d): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}

    timed = ("wall_seconds", "frames_per_s")  # clock readings: the only values that may differ

    def summary(text: bytes) -> dict:
        out = json.loads(text)
        for section in (out, out.get("train", {}), out.get("val", {})):
            for key in timed:
                section.pop(key, None)
        return out

    one, four = files(runs[1]), files(runs[4])
    assert one.keys() == four.keys()
    for name in one:
        if name.name == "metrics.json":
            assert summary(one[name]) == summary(four[name])
        elif name.stem not in timed:
            assert one[name] == four[name], name
    state = [torch.load(tmp_path / f"m{e}" / "last.pt", weights_only=True)["trainer"]["model"] for e in (1, 4)]
    assert all(torch.equal(state[0][k], state[1][k]) for k in state[0])
