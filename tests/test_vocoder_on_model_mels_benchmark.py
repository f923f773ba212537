"""benchmarks/vocoder_on_model_mels.py: the mels it fine-tunes the vocoder on are the acoustic
model's, over each recording's own frames, and the fine-tuning starts from the run's vocoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from benchmarks.vocoder_on_model_mels import fine_tune, model_mels, with_model_mels
from helpers import TINY_VOCODER, committed_params
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore
from pipeline.vocoding.checkpoint import load_generator
from pipeline.vocoding.data import Utterance


def test_every_training_utterance_gets_the_models_mel_over_its_own_frames(tiny_runs, tiny_store) -> None:
    synth = Synthesizer.from_file(tiny_runs["autoregressive"] / "models" / "best.pt")
    predicted = model_mels(synth, tiny_store, sampling=1.0)
    store = FeatureStore(tiny_store)
    training = [i for i in range(len(store)) if store.array("split")[i] == TRAIN]
    assert sorted(predicted) == sorted(store.ids[i] for i in training)
    for i in training:
        recorded, mel = store.mel(i), predicted[store.ids[i]]
        assert mel.shape == recorded.shape and np.isfinite(mel).all()
        assert not np.allclose(mel, recorded, atol=1e-2)  # the model's prediction, not the recording's mel


def test_the_fine_tuning_set_is_each_recording_twice_once_under_the_models_mel() -> None:
    wave = np.zeros(40, dtype=np.float32)
    recorded = [Utterance(name, np.full((5, 3), k, np.float32), wave) for k, name in enumerate("ab")]
    predicted = {"a": np.full((5, 3), 7.0, np.float32), "b": np.full((5, 3), 8.0, np.float32)}
    both = with_model_mels(recorded, predicted)
    assert [u.id for u in both] == ["a", "b", "a", "b"]
    assert [float(u.mel[0, 0]) for u in both] == [0.0, 1.0, 7.0, 8.0]
    assert all(u.wave is wave for u in both)


def test_a_training_utterance_without_a_model_mel_is_named() -> None:
    recorded = [Utterance("a", np.zeros((5, 3), np.float32), np.zeros(40, np.float32))]
    with pytest.raises(ValueError, match="'a'"):
        with_model_mels(recorded, {})


def test_fine_tuning_starts_from_the_runs_vocoder_and_leaves_models_alone(
    tiny_runs, tiny_store, tiny_vocoder, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    shutil.copyfile(tiny_vocoder, run / "models" / "vocoder.pt")
    shutil.copytree(tiny_store, run / "data" / "features.zarr")
    manifest = pd.read_parquet(tiny_store.parent / "manifest.parquet")
    # As in a real run, the recordings are named relative to the run's folder.
    (run / "data" / "corpus").symlink_to(Path(manifest["audio"].iloc[0]).resolve().parent, target_is_directory=True)
    manifest["audio"] = [f"data/corpus/{Path(a).name}" for a in manifest["audio"]]
    manifest.to_parquet(run / "data" / "manifest.parquet")
    params = committed_params()
    params["vocoder"] = {**TINY_VOCODER, "max_steps": 3, "val_every": 3, "samples": 0}
    (run / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    synth = Synthesizer.from_file(tiny_runs["autoregressive"] / "models" / "best.pt")
    before = (run / "models" / "vocoder.pt").read_bytes()

    summary = fine_tune(run, model_mels(synth, tiny_store, 1.0), steps=2, lr=1e-3, work=run / "tuned")

    assert summary["steps"] == 2
    assert (run / "models" / "vocoder.pt").read_bytes() == before  # the run's own vocoder is untouched
    base = load_generator(run / "models" / "vocoder.pt", None).state_dict()
    tuned = load_generator(run / "tuned" / "models" / "vocoder.pt", None).state_dict()
    moved = [k for k in base if not torch.equal(base[k], tuned[k])]
    # Two small steps from the base move every weight a little: the base's weights were the start.
    assert moved and max(float((base[k] - tuned[k]).abs().max()) for k in base) < 0.05
