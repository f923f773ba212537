"""`hamgara export`: the voice as ONNX graphs + voice.json, saying what the torch model says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.export import main as export_main
from pipeline.exporting.parity import MAX_MEL_DIFFERENCE, compare
from pipeline.runtime import Voice, VoiceError

WORDS = "The small dog slept."  # words of the tiny store's texts: its symbol table covers them


def ids_of(synth: Synthesizer, count: int, seed: int) -> list[int]:
    """`count` symbol ids drawn from the model's table (no pad): text the frontend never wrote."""
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.integers(1, len(synth.symbols), count)]


@pytest.mark.parametrize("decoder", ["autoregressive", "parallel"])
@pytest.mark.parametrize("length", [1, 9, 40])
def test_the_runtime_mel_equals_the_torch_mel_frame_for_frame(tiny_voices, decoder: str, length: int) -> None:
    synth, voice = tiny_voices[decoder]
    ids = ids_of(synth, length, seed=length)
    ((reference, torch_stop, _),) = synth.mels([ids], synth.languages[0])
    mel, runtime_stop = voice.mel(ids, synth.languages[0])
    assert mel.shape == reference.shape
    assert runtime_stop == torch_stop
    assert np.abs(mel - reference).max() <= MAX_MEL_DIFFERENCE


def test_a_length_scale_changes_the_runtime_frames_as_it_changes_torchs(tiny_voices) -> None:
    synth, voice = tiny_voices["parallel"]
    ids = ids_of(synth, 12, seed=3)
    ((reference, _, _),) = synth.mels([ids], synth.languages[0], length_scale=1.7)
    mel, _ = voice.mel(ids, synth.languages[0], length_scale=1.7)
    assert mel.shape == reference.shape and len(mel) > len(voice.mel(ids, synth.languages[0])[0])


def test_parity_is_checked_on_text_through_the_frontend(tiny_voices) -> None:
    synth, voice = tiny_voices["autoregressive"]
    (result,) = compare(synth, voice, [WORDS])
    assert result.same, result


def test_a_planted_difference_fails_the_parity_check(tiny_voices) -> None:
    # The check must be able to fail: a voice whose mel statistics are off says something else.
    synth, voice = tiny_voices["parallel"]
    voice.mean = voice.mean + 0.01
    try:
        (result,) = compare(synth, voice, [WORDS])
    finally:
        voice.mean = voice.mean - 0.01
    assert not result.same and result.max_difference > MAX_MEL_DIFFERENCE


def test_voice_json_carries_what_a_runtime_needs_and_the_figures(tiny_voices, tiny_runs) -> None:
    synth, voice = tiny_voices["autoregressive"]
    config = json.loads((voice.folder / "voice.json").read_text(encoding="utf-8"))
    assert config["symbols"] == synth.symbols and config["speakers"] == synth.speakers
    assert config["languages"] == synth.languages and config["mel"]["sample_rate"] == synth.mel_settings.sample_rate
    assert config["model"]["reduction"] == synth.config.reduction
    assert config["vocoder"]["kind"] == "trained"
    assert set(config["files"]) == {
        "encoder.onnx",
        "decoder_setup.onnx",
        "decoder_step.onnx",
        "postnet.onnx",
        "vocoder.onnx",
    }
    assert config["identity"]["step"] == synth.step and len(config["identity"]["checkpoint_sha256"]) == 16


def test_a_voice_without_a_trained_vocoder_speaks_through_griffin_lim(tiny_voices) -> None:
    _, voice = tiny_voices["parallel"]
    assert voice.vocoder_kind == "griffin_lim"
    wave = voice.speak(WORDS)
    assert wave.dtype == np.float32 and len(wave) > 0 and np.isfinite(wave).all() and np.abs(wave).max() > 0


def test_the_export_command_writes_a_verified_voice_with_the_eval_figures(tiny_runs, tiny_vocoder, tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(tiny_runs["autoregressive"] / "models", models)
    shutil.copy(tiny_vocoder, models / "vocoder.pt")
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"utterances": 25, "wer": {"gap": 0.11, "synthesized": 0.4}}), encoding="utf-8")
    out = tmp_path / "voice"
    rc = export_main(["-o", str(out), "--checkpoint", str(models / "best.pt"), "--eval", str(report), "--verify", "2"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "verified on 2 symbol sequence(s)" in printed
    figures = json.loads((out / "voice.json").read_text(encoding="utf-8"))["figures"]
    assert figures["wer_gap"] == 0.11 and figures["utterances"] == 25


def test_export_refuses_to_replace_a_folder_it_did_not_write(tiny_runs, tmp_path, capsys) -> None:
    mine = tmp_path / "voice"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    rc = export_main(["-o", str(mine), "--checkpoint", str(tiny_runs["parallel"] / "models" / "best.pt")])
    assert rc == 2
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert str(mine) in capsys.readouterr().err


def test_export_names_a_missing_checkpoint(tmp_path, capsys) -> None:
    rc = export_main(["-o", str(tmp_path / "voice"), "--checkpoint", str(tmp_path / "nothing.pt")])
    assert rc == 2
    assert "nothing.pt" in capsys.readouterr().err
    assert not (tmp_path / "voice").exists()


def test_a_damaged_graph_is_refused_naming_the_file(tiny_voices, tmp_path) -> None:
    _, voice = tiny_voices["parallel"]
    copy = tmp_path / "voice"
    shutil.copytree(voice.folder, copy)
    with (copy / "postnet.onnx").open("r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(VoiceError, match="postnet.onnx"):
        Voice.load(copy)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "voice.json").unlink(), "voice.json: missing"),
        (lambda folder: (folder / "voice.json").write_text("{not json", encoding="utf-8"), "not readable JSON"),
        (lambda folder: (folder / "encoder.onnx").unlink(), "encoder.onnx: missing"),
        (
            lambda folder: (folder / "voice.json").write_text(json.dumps({"format": "other/9"}), encoding="utf-8"),
            "format 'other/9'",
        ),
    ],
)
def test_a_broken_voice_folder_is_refused_with_the_reason(tiny_voices, tmp_path, damage, message) -> None:
    _, voice = tiny_voices["parallel"]
    copy = tmp_path / "voice"
    shutil.copytree(voice.folder, copy)
    damage(copy)
    with pytest.raises(VoiceError, match=message):
        Voice.load(copy)


def test_a_missing_voice_folder_says_how_to_make_one(tmp_path) -> None:
    with pytest.raises(VoiceError, match="hamgara export"):
        Voice.load(tmp_path / "nowhere")


def test_the_voice_path_is_written_whole_or_not_at_all(tiny_runs, tmp_path, monkeypatch) -> None:
    # An export that fails midway (here: the postnet graph) leaves no folder at the path.
    import pipeline.exporting.voice as voice_module

    def fail(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(voice_module, "_vocoder", fail)
    synth = Synthesizer.from_file(tiny_runs["parallel"] / "models" / "best.pt")
    with pytest.raises(RuntimeError, match="planted"):
        voice_module.export_voice(synth, None, tmp_path / "voice", {}, {})
    assert not (tmp_path / "voice").exists()
    assert not any(Path(tmp_path).glob(".voice.tmp-*"))


def random_voice(decoder: str, tmp_path: Path, **changes: object) -> tuple[Synthesizer, Voice]:
    """An untrained two-speaker, two-language model (tests/helpers.py small_config) as a
    checkpoint, and its export: the speaker and language inputs and every config path."""
    import dataclasses

    import torch

    from helpers import small_config
    from model.mel import MelSettings
    from model.tts import HamgaraTTS
    from pipeline.exporting.voice import export_voice

    torch.manual_seed(0)
    cfg = small_config(decoder, **changes)
    model = HamgaraTTS(cfg)
    ckpt = {
        "model_config": dataclasses.asdict(cfg),
        "symbols": ["_", " ", *[chr(ord("a") + i) for i in range(28)]],
        "frontend": "characters",
        "languages": ["en-us", "fa"],
        "speakers": ["alice", "bob"],
        "mel": MelSettings(22050, 1024, 256, 1024, cfg.n_mels, 0.0, 8000.0, 1e-5).__dict__,
        "mel_mean": [-4.0] * cfg.n_mels,
        "mel_std": [2.0] * cfg.n_mels,
        "model": model.state_dict(),
        "step": 0,
    }
    synth = Synthesizer(ckpt)
    export_voice(synth, None, tmp_path / "voice", {}, {})
    return synth, Voice.load(tmp_path / "voice")


@pytest.mark.parametrize(
    "decoder, changes",
    [
        ("autoregressive", {"aligned_conditioning": True, "text_conv_layers": 2}),
        ("parallel", {"frame_attention_window": 3, "text_conv_layers": 1, "text_conv_kernel": 3}),
    ],
)
def test_every_speaker_and_language_says_what_torch_says(tmp_path, decoder: str, changes: dict) -> None:
    synth, voice = random_voice(decoder, tmp_path, **changes)
    ids = ids_of(synth, 15, seed=5)
    mels = {}
    for speaker in (0, 1):
        for language in ("en-us", "fa"):
            ((reference, torch_stop, _),) = synth.mels([ids], language, speaker)
            mel, runtime_stop = voice.mel(ids, language, speaker)
            assert mel.shape == reference.shape and runtime_stop == torch_stop
            assert np.abs(mel - reference).max() <= MAX_MEL_DIFFERENCE
            mels[speaker, language] = mel
    # The inputs are wired: another speaker or language is another mel.
    for other in ((1, "en-us"), (0, "fa")):
        a, b = mels[0, "en-us"], mels[other]
        assert a.shape != b.shape or not np.allclose(a, b)
