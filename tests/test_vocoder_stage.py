"""The vocoder stage on the tiny store: it trains, logs, writes samples, resumes exactly, sets
aside what it cannot resume, refuses a vocoder made for other mels, and says what is wrong
with a damaged checkpoint, a changed recording, a diverging run or a missing store."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from helpers import TINY_VOCODER, committed_params, table_steps
from model.mel import MelSettings
from model.vocoder import GriffinLimVocoder, TrainedVocoder
from pipeline.common.stage import RunAborted
from pipeline.config import ParamsError, vocoder_config
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError
from pipeline.vocoder import main as vocoder_main
from pipeline.vocoding import loop
from pipeline.vocoding.checkpoint import VocoderMismatchError, auto_vocoder, load_generator
from pipeline.vocoding.data import VAL, Utterance, draw_batch, load_utterances, store_mel_settings
from pipeline.vocoding.loop import BEST, LAST, VocoderRun, fit_vocoder, learning_rate


def vocoder_params(params: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """params with a tiny, few-step CPU vocoder run (vocoder keys overridable)."""
    p = copy.deepcopy(params)
    p["vocoder"] = {**p.get("vocoder", {}), **TINY_VOCODER, **changes}
    return p


def fit(store: Path, params: dict[str, Any], root: Path, **kwargs: Any) -> dict[str, Any]:
    """fit_vocoder into root/models and root/live."""
    manifest = store.parent / "manifest.parquet"
    return fit_vocoder(store, manifest, params, root / "models", root / "live", progress=False, **kwargs)


def generator_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["generator"]


@pytest.fixture(scope="module")
def trained(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step run (root with models/ and live/), for the tests that only read it."""
    root = tmp_path_factory.mktemp("vocoder_run")
    fit(tiny_store, vocoder_params(committed_params()), root)
    return root


@pytest.fixture(scope="module")
def resumed(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run stopped after 3 of its 6 steps, then run again to the end."""
    root = tmp_path_factory.mktemp("vocoder_resumed")
    p = vocoder_params(committed_params())
    with pytest.raises(KeyboardInterrupt, match="stopped at step 3"):
        fit(tiny_store, p, root, stop_after=3)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert fit(tiny_store, p, root)["steps"] == 6
    # A run that ignored vocoder_last.pt and started over would end with the same weights too.
    assert f"resuming from {root / 'models' / LAST} at step 3" in said.getvalue()
    return root


@pytest.fixture
def settings(tiny_store: Path) -> MelSettings:
    return store_mel_settings(FeatureStore(tiny_store))


# --- a run ----------------------------------------------------------------------------------------


def test_a_run_writes_the_vocoder_its_last_state_metrics_and_samples(trained, settings) -> None:
    models, live = trained / "models", trained / "live"
    generator = load_generator(models / BEST, settings)
    assert generator.config.dim == 16 and generator.settings == settings
    assert torch.load(models / LAST, weights_only=True)["step"] == 6
    metrics = json.loads((live / "metrics.json").read_text(encoding="utf-8"))
    assert math.isfinite(metrics["val_loss"])
    samples = sorted(p.name for p in (live / "samples").iterdir())
    assert len(samples) == 2, samples  # samples: 1 -> one synthesized clip beside its recording
    recording = next(n for n in samples if n.endswith("_recording.wav"))
    utt_id = recording.removesuffix("_recording.wav")
    assert samples == [f"{utt_id}.wav", recording]
    synthesized, original = sf.info(live / "samples" / f"{utt_id}.wav"), sf.info(live / "samples" / recording)
    assert synthesized.samplerate == original.samplerate == settings.sample_rate
    assert synthesized.frames == original.frames  # frames * hop samples, both


def test_an_interrupted_run_resumes_to_the_same_weights(trained, resumed) -> None:
    a, b = generator_weights(trained / "models" / LAST), generator_weights(resumed / "models" / LAST)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["head.weight"].abs().max() > 0  # it trained: the head starts at zero


def test_a_resumed_run_logs_no_step_twice(resumed) -> None:
    tables = table_steps(resumed / "live")
    assert tables["train/loss.tsv"] == list(range(6))
    assert tables["val_loss.tsv"] == [1, 3, 5]  # optimizer steps 2, 4, 6 at dvclive steps k - 1
    for name, steps in tables.items():
        assert len(steps) == len(set(steps)), f"{name}: {steps}"


# --- the batches and the schedule ------------------------------------------------------------------

SMALL = MelSettings(22050, 1024, 256, 1024, 80, 0.0, 8000.0, 1e-5)


def utterances(lengths: list[int]) -> list[Utterance]:
    rng = np.random.default_rng(0)
    return [
        Utterance(
            f"u{i}",
            rng.standard_normal((n, SMALL.n_mels)).astype(np.float32),
            rng.standard_normal(n * SMALL.hop_length).astype(np.float32),
        )
        for i, n in enumerate(lengths)
    ]


def test_a_batch_depends_only_on_the_seed_and_the_step() -> None:
    # What makes a resumed run see exactly the batches an uninterrupted one sees.
    utts = utterances([20, 30, 40])
    mels, waves = draw_batch(utts, 1234, 5, 4, 8, SMALL)
    assert mels.shape == (4, 8, SMALL.n_mels) and waves.shape == (4, 8 * SMALL.hop_length)
    again = draw_batch(utts, 1234, 5, 4, 8, SMALL)
    assert np.array_equal(mels, again[0]) and np.array_equal(waves, again[1])
    assert not np.array_equal(mels, draw_batch(utts, 1234, 6, 4, 8, SMALL)[0])
    assert not np.array_equal(mels, draw_batch(utts, 99, 5, 4, 8, SMALL)[0])


def test_an_excerpt_is_a_mel_and_the_wave_under_it() -> None:
    utts = utterances([20, 30, 40])
    hop = SMALL.hop_length
    mels, waves = draw_batch(utts, 1234, 3, 4, 8, SMALL)
    for mel, wave in zip(mels, waves):
        u = next(u for u in utts if any(np.array_equal(mel, u.mel[s : s + 8]) for s in range(len(u.mel) - 7)))
        start = next(s for s in range(len(u.mel) - 7) if np.array_equal(mel, u.mel[s : s + 8]))
        assert np.array_equal(wave, u.wave[start * hop : (start + 8) * hop])


def test_an_utterance_shorter_than_a_segment_is_padded_with_silence() -> None:
    (short,) = utterances([3])
    hop = SMALL.hop_length
    mels, waves = draw_batch([short], 1234, 0, 2, 8, SMALL)
    assert mels.shape == (2, 8, SMALL.n_mels) and waves.shape == (2, 8 * hop)
    for b in range(2):
        assert np.array_equal(mels[b, :3], short.mel) and np.array_equal(waves[b, : 3 * hop], short.wave)
        assert np.all(mels[b, 3:] == np.float32(math.log(SMALL.log_clamp)))
        assert np.all(waves[b, 3 * hop :] == 0.0)


def test_the_learning_rate_warms_up_peaks_and_decays_to_zero(params) -> None:
    cfg = vocoder_config(vocoder_params(params, lr=1e-3, warmup_steps=10, max_steps=110))
    rates = [learning_rate(cfg, step) for step in range(111)]
    assert rates[:10] == pytest.approx([1e-3 * (k + 1) / 10 for k in range(10)])
    assert max(rates) == pytest.approx(1e-3) and rates[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[60] == pytest.approx(0.5e-3)  # half-way through the cosine
    assert rates[110] == pytest.approx(0.0, abs=1e-12) and rates[109] < 1e-6


# --- planted faults: a diverging run, other mels, damaged files -------------------------------------


def test_a_diverging_run_stops_naming_the_step_and_the_term(tiny_store, tmp_path, params, monkeypatch) -> None:
    real = loop.vocoder_loss_terms

    def diverged(*args: Any) -> dict[str, torch.Tensor]:
        return {**real(*args), "log_l1": torch.tensor(float("inf"))}

    monkeypatch.setattr(loop, "vocoder_loss_terms", diverged)
    with pytest.raises(RunAborted) as e:
        fit(tiny_store, vocoder_params(params, max_nonfinite=2), tmp_path)
    message = str(e.value)
    assert "2 steps in a row" in message and "step 2" in message and "log_l1=inf" in message
    assert "spectral_convergence" not in message  # only the term that went wrong is named
    assert torch.load(tmp_path / "models" / LAST, weights_only=True)["step"] == 2


def test_a_vocoder_for_other_mels_is_refused_naming_both_values(trained, settings) -> None:
    other = dataclasses.replace(settings, sample_rate=16000)
    with pytest.raises(VocoderMismatchError) as e:
        load_generator(trained / "models" / BEST, other)
    assert f"sample_rate: vocoder {settings.sample_rate}, mels 16000" in str(e.value)
    assert "fmax" not in str(e.value)  # only what differs is named


def test_a_truncated_vocoder_is_a_checkpoint_error_naming_the_file(trained, tmp_path, settings) -> None:
    data = (trained / "models" / BEST).read_bytes()
    path = tmp_path / "vocoder.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_generator(path, settings)
    assert str(e.value).startswith(f"{path}: ")
    assert "Traceback" not in str(e.value)


def test_a_vocoder_with_a_tensor_of_the_wrong_shape_is_damaged(trained, tmp_path, settings) -> None:
    ckpt = torch.load(trained / "models" / BEST, weights_only=True)
    ckpt["generator"]["head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "vocoder.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="damaged vocoder checkpoint") as e:
        load_generator(path, settings)
    assert str(e.value).startswith(f"{path}: ")


def test_an_acoustic_model_checkpoint_is_not_taken_for_a_vocoder(tmp_path, settings) -> None:
    path = tmp_path / "best.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "model_config": {"decoder": "parallel"}, "step": 3}, path)
    with pytest.raises(CheckpointError, match="an acoustic-model checkpoint, not a vocoder") as e:
        load_generator(path, settings)
    assert str(e.value).startswith(f"{path}: ")


def test_a_damaged_last_checkpoint_is_set_aside_and_training_starts_fresh(tiny_store, tmp_path, params) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / LAST).write_bytes(b"not a checkpoint at all" * 10)
    summary = fit(tiny_store, vocoder_params(params, max_steps=2), tmp_path)
    assert summary["steps"] == 2
    aside = list(models.glob(f"{LAST}.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"not a checkpoint at all" * 10
    assert torch.load(models / LAST, weights_only=True)["step"] == 2


def test_a_last_checkpoint_of_other_settings_is_kept_aside_and_the_run_starts_fresh(
    trained, tiny_store, tmp_path, params, capsys
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained / "models" / LAST, models / LAST)  # 6 steps at lr 2e-3
    # max_steps does not change what is trained: a resume would end at once, at step 6.
    summary = fit(tiny_store, vocoder_params(params, lr=1e-3, max_steps=2), tmp_path)
    assert summary["steps"] == 2
    out = capsys.readouterr().out
    assert "not resuming" in out and "(lr)" in out and "starting fresh" in out
    kept = list(models.glob("vocoder_last-*.pt"))
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["step"] == 6


# --- starting from another vocoder ------------------------------------------------------------------


def setup_run(store: Path, params: dict[str, Any], root: Path) -> VocoderRun:
    run = VocoderRun(
        store, store.parent / "manifest.parquet", vocoder_config(params), root / "models", root / "live", False, None
    )
    run.setup()
    return run


def test_init_from_starts_from_the_base_vocoders_weights(
    trained, tiny_store, tmp_path, params, monkeypatch, capsys
) -> None:
    (tmp_path / "pretrained").mkdir()
    shutil.copy(trained / "models" / BEST, tmp_path / "pretrained" / "vocoder.pt")
    monkeypatch.chdir(tmp_path)
    run = setup_run(tiny_store, vocoder_params(params, init_from="pretrained/vocoder.pt"), tmp_path)
    base = generator_weights(tmp_path / "pretrained" / "vocoder.pt")
    mine = run.generator.state_dict()
    assert base.keys() == mine.keys() and all(torch.equal(base[k], mine[k]) for k in base)
    assert run.step == 0  # its weights only: the schedule starts over
    assert "starting from the weights of pretrained/vocoder.pt" in capsys.readouterr().out
    fresh = setup_run(tiny_store, vocoder_params(params), tmp_path / "fresh").generator.state_dict()
    assert not torch.equal(fresh["embed.weight"], mine["embed.weight"])  # the check can fail


def test_init_from_a_vocoder_for_other_mels_is_refused(trained, tiny_store, tmp_path, params, monkeypatch) -> None:
    ckpt = torch.load(trained / "models" / BEST, weights_only=True)
    ckpt["mel"]["sample_rate"] = 16000
    (tmp_path / "pretrained").mkdir()
    torch.save(ckpt, tmp_path / "pretrained" / "vocoder.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="vocoder.init_from") as e:
        setup_run(tiny_store, vocoder_params(params, init_from="pretrained/vocoder.pt"), tmp_path)
    rate = ckpt["mel"]["sample_rate"], store_mel_settings(FeatureStore(tiny_store)).sample_rate
    assert f"sample_rate: vocoder {rate[0]}, mels {rate[1]}" in str(e.value)


def test_init_from_set_after_an_interrupted_run_starts_from_the_base(
    trained, tiny_store, tmp_path, params, monkeypatch, capsys
) -> None:
    # The base's bytes are part of what a vocoder_last.pt must match: resuming the interrupted
    # from-scratch run would silently ignore the base the user asked for.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, vocoder_params(params), tmp_path, stop_after=1)
    (tmp_path / "pretrained").mkdir()
    shutil.copy(trained / "models" / BEST, tmp_path / "pretrained" / "vocoder.pt")
    capsys.readouterr()
    run = setup_run(tiny_store, vocoder_params(params, init_from="pretrained/vocoder.pt"), tmp_path)
    out = capsys.readouterr().out
    assert "not resuming" in out and "init_from" in out
    assert "starting from the weights of pretrained/vocoder.pt" in out
    base = generator_weights(tmp_path / "pretrained" / "vocoder.pt")
    assert all(torch.equal(base[k], v) for k, v in run.generator.state_dict().items())


def test_a_last_checkpoint_whose_tensors_do_not_fit_is_set_aside(tiny_store, tmp_path, params, capsys) -> None:
    # Same settings, other tensors (a Hamgara whose generator was different wrote it): set aside
    # like a damaged file, not a traceback.
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, vocoder_params(params), tmp_path, stop_after=1)
    last = tmp_path / "models" / LAST
    ckpt = torch.load(last, weights_only=True)
    ckpt["generator"]["head.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, last)
    summary = fit(tiny_store, vocoder_params(params), tmp_path)
    assert summary["steps"] == TINY_VOCODER["max_steps"]
    assert "does not fit this generator" in capsys.readouterr().out
    assert list((tmp_path / "models").glob(f"{LAST}.damaged-*"))


# --- params -----------------------------------------------------------------------------------------


def test_an_even_kernel_is_refused_naming_the_key(params) -> None:
    with pytest.raises(ParamsError, match=r"vocoder\.kernel \(6\) must be odd"):
        vocoder_config(vocoder_params(params, kernel=6))


@pytest.mark.parametrize(
    "path", ["models/vocoder.pt", "/tmp/vocoder.pt", "pretrained/../models/vocoder.pt", "pretrained"]
)
def test_init_from_outside_pretrained_is_refused_naming_the_key(params, path: str) -> None:
    # DVC tracks pretrained/ for the stage: a base from elsewhere would change unseen.
    with pytest.raises(ParamsError, match=r"vocoder\.init_from .*must be a vocoder checkpoint under pretrained/"):
        vocoder_config(vocoder_params(params, init_from=path))


# --- the data ---------------------------------------------------------------------------------------


def test_a_recording_changed_since_precompute_is_named_with_the_fix(tiny_store, tmp_path) -> None:
    store = FeatureStore(tiny_store)
    utt_id = next(store.ids[i] for i, split in enumerate(store.array("split")) if split == VAL)
    manifest = pd.read_parquet(tiny_store.parent / "manifest.parquet")
    row = manifest.index[manifest["id"] == utt_id][0]
    audio, sr = sf.read(manifest.at[row, "audio"], dtype="float32")
    shorter = tmp_path / f"{utt_id}.wav"
    sf.write(shorter, audio[: len(audio) - int(0.3 * sr)], sr, subtype="PCM_16")
    manifest.at[row, "audio"] = str(shorter)  # the shared store's own files stay untouched
    manifest.to_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(ValueError) as e:
        load_utterances(store, tmp_path / "manifest.parquet", VAL, progress=False)
    assert str(shorter) in str(e.value) and "rerun dvc repro precompute" in str(e.value)


def test_the_utterances_are_the_stored_mels_with_hop_samples_per_frame(tiny_store) -> None:
    store = FeatureStore(tiny_store)
    utts = load_utterances(store, tiny_store.parent / "manifest.parquet", VAL, progress=False)
    val_ids = [store.ids[i] for i, split in enumerate(store.array("split")) if split == VAL]
    assert [u.id for u in utts] == val_ids
    hop = store_mel_settings(store).hop_length
    for u in utts:
        assert np.array_equal(u.mel, store.mel(store.ids.index(u.id)))
        assert u.wave.shape == (u.mel.shape[0] * hop,)


# --- which vocoder evaluate and synth use -----------------------------------------------------------


def test_auto_without_a_trained_vocoder_is_griffin_lim_without_a_note(tmp_path, settings) -> None:
    vocoder, note = auto_vocoder("auto", settings, 4, "cpu", tmp_path / "vocoder.pt")
    assert isinstance(vocoder, GriffinLimVocoder) and note is None


def test_auto_with_a_trained_vocoder_uses_it(trained, settings) -> None:
    vocoder, note = auto_vocoder("auto", settings, 4, "cpu", trained / "models" / BEST)
    assert isinstance(vocoder, TrainedVocoder) and note is None


def test_auto_with_a_vocoder_for_other_mels_falls_back_saying_why(trained, settings) -> None:
    other = dataclasses.replace(settings, sample_rate=16000)
    vocoder, note = auto_vocoder("auto", other, 4, "cpu", trained / "models" / BEST)
    assert isinstance(vocoder, GriffinLimVocoder)
    assert note is not None and note.startswith("using Griffin-Lim: ")
    assert f"sample_rate: vocoder {settings.sample_rate}, mels 16000" in note


def test_an_explicit_trained_vocoder_for_other_mels_is_an_error(trained, settings) -> None:
    other = dataclasses.replace(settings, sample_rate=16000)
    with pytest.raises(VocoderMismatchError, match="sample_rate"):
        auto_vocoder("trained", other, 4, "cpu", trained / "models" / BEST)


# --- the command ------------------------------------------------------------------------------------


def test_the_help_names_what_the_stage_writes(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        vocoder_main(["--help"])
    assert e.value.code == 0
    assert "models/vocoder.pt" in capsys.readouterr().out


def test_a_missing_features_store_exits_2_naming_it(tmp_path, params, capsys, monkeypatch) -> None:
    monkeypatch.delenv("HAMGARA_TRACEBACK", raising=False)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(vocoder_params(params), sort_keys=False), encoding="utf-8")
    missing = tmp_path / "nowhere" / "features.zarr"
    rc = vocoder_main(
        [
            "--params",
            str(params_file),
            "--features",
            str(missing),
            "--manifest",
            str(tmp_path / "manifest.parquet"),
            "--models",
            str(tmp_path / "models"),
            "--live",
            str(tmp_path / "live"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "models" / BEST).exists()
