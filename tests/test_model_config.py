"""params.yaml `model` -> ModelConfig, and `hamgara model-info`."""

from __future__ import annotations

import copy

import pytest
import yaml

from helpers import committed_params
from model.tts import HamgaraTTS, parameter_counts
from pipeline.config import ConfigError, model_config, train_config
from pipeline.model_info import main as model_info


def test_the_size_preset_is_expanded_into_the_config(params: dict) -> None:
    cfg = model_config(params, n_symbols=50, n_speakers=3, n_languages=2, n_mels=80)
    preset = params["model"]["sizes"][params["model"]["size"]]
    assert cfg.d_model == preset["d_model"] and cfg.decoder_layers == preset["decoder_layers"]
    assert (cfg.n_symbols, cfg.n_speakers, cfg.n_languages) == (50, 3, 2)


def test_larger_presets_have_more_parameters(params: dict) -> None:
    totals = []
    for size in ("tiny", "small", "base"):
        p = copy.deepcopy(params)
        p["model"]["size"] = size
        totals.append(parameter_counts(HamgaraTTS(model_config(p, 50, 1, 1, 80)))["total"])
    assert totals == sorted(totals) and len(set(totals)) == 3


def test_an_unknown_size_or_decoder_is_a_clear_error(params: dict) -> None:
    p = copy.deepcopy(params)
    p["model"]["size"] = "huge"
    with pytest.raises(ConfigError, match="model.size 'huge'"):
        model_config(p, 50, 1, 1, 80)
    p = copy.deepcopy(params)
    p["model"]["decoder"] = "diffusion"
    with pytest.raises(ConfigError, match="decoder"):
        model_config(p, 50, 1, 1, 80)


def test_an_even_text_convolution_kernel_is_refused_naming_the_key(params: dict) -> None:
    p = copy.deepcopy(params)
    p["model"]["text_conv_kernel"] = 4
    with pytest.raises(ConfigError, match=r"model.text_conv_kernel \(4\) must be odd"):
        model_config(p, 50, 1, 1, 80)


def test_a_checkpoint_config_from_before_the_text_convolutions_builds_the_model_it_was(params: dict) -> None:
    import dataclasses

    from model.config import ModelConfig

    saved = dataclasses.asdict(model_config(params, 50, 1, 1, 80))
    del saved["text_conv_layers"], saved["text_conv_kernel"]
    model = HamgaraTTS(ModelConfig(**saved))
    assert model.encoder.convs is None


def test_loss_weights_and_settings_come_from_params(params: dict) -> None:
    w = train_config(params).loss_weights()
    assert (w.mel, w.kl, w.stop, w.attention) == (22.0, 1.8, 1.5, 0.3)
    s = train_config(params).loss_settings(reduction=2)
    assert (s.huber_delta, s.mel_label_smoothing, s.stop_label_smoothing) == (0.6, 0.025, 0.06)


def test_model_info_prints_every_size_and_decoder_and_marks_the_configured_one(tmp_path, capsys) -> None:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(committed_params()), encoding="utf-8")
    assert model_info(["--params", str(params_file), "--features", str(tmp_path / "none.zarr"), "--symbols", "40"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "autoregressive" in line or "parallel" in line]
    assert len(rows) == 6
    assert sum(line.startswith("*") for line in rows) == 1
    assert "40 symbols" in out
