"""train.init_from: a new run from another run's weights, matched by name, distinct from resume."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from helpers import make_batch, small_config, tiny_params
from model.tts import HamgaraTTS
from pipeline.config import ConfigError, train_config
from pipeline.training.distributed import DistContext
from pipeline.training.loop import TrainingRun, fit
from pipeline.training.warm_start import WarmStartError, check_compatible, warm_start_state

SYMBOLS = ["_", " ", *"abcdefghijklmnopqrstuvwxyz", ".", ","]  # 30, as small_config's n_symbols
MEL = {"sample_rate": 22050, "hop_length": 256, "n_mels": 16}


def names(speakers: list[str], symbols: list[str] = SYMBOLS, languages: tuple[str, ...] = ("en-us", "fa")) -> dict:
    return {"symbols": list(symbols), "languages": list(languages), "speakers": speakers}


def model(n_symbols: int = 30, n_speakers: int = 2) -> HamgaraTTS:
    return HamgaraTTS(small_config("parallel", n_symbols=n_symbols, n_speakers=n_speakers))


@pytest.fixture
def base_run(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory, params: dict) -> Path:
    """A 6-step base run on the tiny store; its best.pt copied to <root>/pretrained/base.pt."""
    root = tmp_path_factory.mktemp("base")
    fit(tiny_store, tiny_params(params), root / "models", root / "live", progress=False)
    (root / "pretrained").mkdir()
    shutil.copy(root / "models" / "best.pt", root / "pretrained" / "base.pt")
    return root


def fine_tune_params(params: dict, **train: object) -> dict:
    return tiny_params(params, init_from="pretrained/base.pt", **train)


def test_a_warm_start_holds_the_base_weights_exactly_with_a_fresh_optimizer(
    tiny_store, base_run, params, monkeypatch
) -> None:
    monkeypatch.chdir(base_run)
    run = TrainingRun(DistContext(), tiny_store, fine_tune_params(params), Path("m"), Path("live"), False, None)
    base = torch.load("pretrained/base.pt", weights_only=True)["model"]
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, base[key]), key
    assert run.trainer.step == 0 and not run.trainer.opt.state and not run.resumed


def test_new_names_get_rows_and_known_names_keep_theirs_whatever_their_index() -> None:
    torch.manual_seed(0)
    base = model()
    reordered = [SYMBOLS[0], *reversed(SYMBOLS[1:-1]), "ñ"]  # "," dropped, "ñ" new, the rest reversed
    new = model(n_symbols=len(reordered), n_speakers=3)
    state, report = warm_start_state(
        base.state_dict(), names(["amy", "bob"]), new, names(["bob", "cat", "amy"], reordered), "base.pt"
    )
    rows, base_rows = state["encoder.embed.weight"], base.state_dict()["encoder.embed.weight"]
    for i, symbol in enumerate(reordered[:-1]):
        assert torch.equal(rows[i], base_rows[SYMBOLS.index(symbol)]), symbol
    assert torch.allclose(rows[-1], base_rows[1:].mean(0))  # the new symbol: the mean of the real rows
    speakers, base_speakers = state["encoder.speaker.weight"], base.state_dict()["encoder.speaker.weight"]
    assert torch.equal(speakers[0], base_speakers[1]) and torch.equal(speakers[2], base_speakers[0])
    assert report.new == {"symbols": ["ñ"], "languages": [], "speakers": ["cat"]}
    assert report.dropped["symbols"] == [","]
    new.load_state_dict(state)  # every weight fits


def test_a_single_speaker_base_gives_every_new_speaker_a_zero_row() -> None:
    base, new = model(n_speakers=1), model(n_speakers=3)
    state, _ = warm_start_state(base.state_dict(), names(["amy"]), new, names(["amy", "bob", "cat"]), "base.pt")
    assert torch.equal(state["encoder.speaker.weight"], torch.zeros(3, 32))


def test_a_single_speaker_run_from_a_multi_speaker_base_encodes_as_the_base_did_for_that_speaker() -> None:
    torch.manual_seed(0)
    base, new = model(n_speakers=2).eval(), model(n_speakers=1).eval()
    state, _ = warm_start_state(base.state_dict(), names(["amy", "bob"]), new, names(["bob"]), "base.pt")
    new.load_state_dict(state)
    batch = make_batch([6, 9], [20, 30])
    bob, only = torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    expected = base.encoder(batch.tokens, batch.token_mask, batch.languages, bob)
    torch.testing.assert_close(new.encoder(batch.tokens, batch.token_mask, batch.languages, only), expected)


def test_a_base_of_another_shape_or_mel_is_refused_naming_each_differing_key() -> None:
    base = {
        "mel": {**MEL, "sample_rate": 16000},
        "model_config": dataclasses.asdict(small_config("parallel", d_model=64)),
    }
    with pytest.raises(WarmStartError) as e:
        check_compatible(base, small_config("parallel"), MEL, "pretrained/base.pt")
    message = str(e.value)
    assert "pretrained/base.pt" in message and "features.sample_rate: base 16000, this run 22050" in message
    assert "model.sizes.<size>.d_model: base 64, this run 32" in message
    assert "heads" not in message  # only what differs


def test_a_base_from_before_the_text_convolutions_fits_a_run_without_them() -> None:
    written = dataclasses.asdict(small_config("autoregressive"))
    del written["text_conv_layers"], written["text_conv_kernel"]
    base = {"mel": MEL, "model_config": written}
    check_compatible(base, small_config("autoregressive"), MEL, "base.pt")  # made as text_conv_layers 0
    with pytest.raises(WarmStartError, match="model.text_conv_layers: base 0, this run 3"):
        check_compatible(base, small_config("autoregressive", text_conv_layers=3), MEL, "base.pt")


def test_a_base_of_the_other_decoder_is_refused() -> None:
    base = {"mel": MEL, "model_config": dataclasses.asdict(small_config("autoregressive"))}
    with pytest.raises(WarmStartError, match="model.decoder: base 'autoregressive', this run 'parallel'"):
        check_compatible(base, small_config("parallel"), MEL, "base.pt")


def test_an_interrupted_fine_tune_resumes_from_its_own_last_checkpoint_not_the_base(
    tiny_store, base_run, params, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(base_run)
    p = fine_tune_params(params)
    fit(tiny_store, p, Path("whole"), Path("live_whole"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_store, p, Path("cut"), Path("live_cut"), progress=False, stop_after=3)
    capsys.readouterr()
    fit(tiny_store, p, Path("cut"), Path("live_cut"), progress=False)
    out = capsys.readouterr().out
    assert "resuming from" in out and "starting from the weights" not in out
    whole = torch.load("whole/last.pt", weights_only=True)["trainer"]["model"]
    cut = torch.load("cut/last.pt", weights_only=True)["trainer"]["model"]
    assert all(torch.equal(whole[k], cut[k]) for k in whole)


def test_a_frozen_module_keeps_the_base_weights_while_the_rest_trains(
    tiny_store, base_run, params, monkeypatch
) -> None:
    monkeypatch.chdir(base_run)
    fit(tiny_store, fine_tune_params(params, freeze=["encoder"]), Path("m"), Path("live"), progress=False)
    base = torch.load("pretrained/base.pt", weights_only=True)["model"]
    tuned = torch.load("m/last.pt", weights_only=True)["trainer"]["model"]
    assert all(torch.equal(tuned[k], base[k]) for k in base if k.startswith("encoder."))
    assert not all(torch.equal(tuned[k], base[k]) for k in base if k.startswith("decoder."))


def test_a_missing_base_is_an_error_naming_the_file(tiny_store, tmp_path, params, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="pretrained/base.pt: no such checkpoint"):
        fit(tiny_store, fine_tune_params(params), Path("m"), Path("live"), progress=False)


@pytest.mark.parametrize("path", ["models/best.pt", "/tmp/base.pt", "pretrained/../models/best.pt", "pretrained"])
def test_a_base_outside_the_tracked_folder_is_refused_with_the_fix(params, path: str) -> None:
    with pytest.raises(ConfigError, match="must be a checkpoint under pretrained/.*cp models/best.pt"):
        train_config(tiny_params(params, init_from=path))


def test_freezing_an_unknown_module_is_refused_naming_the_choices(params) -> None:
    with pytest.raises(ConfigError, match="train.freeze must list distinct modules from encoder, reference"):
        train_config(tiny_params(params, freeze=["text_encoder"]))
