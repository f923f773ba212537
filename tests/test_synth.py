"""`hamgara synth`: text to a wav from a checkpoint alone, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.mel import MelSettings
from model.text import nearest_symbol
from model.vocoder import UnsafeVocoderError, load_vocoder
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.synth import main as synth_main

WORDS = "The small dog slept."  # words of the tiny store's texts: its symbol table covers them


def test_synth_writes_a_valid_wav_from_a_checkpoint(tiny_runs, tmp_path, capsys) -> None:
    out = tmp_path / "hello.wav"
    rc = synth_main(
        [
            WORDS,
            "--checkpoint",
            str(tiny_runs["autoregressive"] / "models" / "best.pt"),
            "-o",
            str(out),
            "--griffin-lim-iters",
            "4",
        ]
    )
    assert rc == 0
    wave, sr = sf.read(out)
    assert sr == 22050 and wave.ndim == 1 and len(wave) > 0 and np.isfinite(wave).all()
    assert "real-time factor" in capsys.readouterr().out


def test_batch_mode_writes_one_wav_per_line(tiny_runs, tmp_path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{WORDS}\n# a comment\n\nThe old shop was cold.\n", encoding="utf-8")
    rc = synth_main(
        [
            "--file",
            str(lines),
            "--checkpoint",
            str(tiny_runs["parallel"] / "models" / "last.pt"),
            "-o",
            str(tmp_path / "out"),
            "--griffin-lim-iters",
            "4",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["0001.wav", "0002.wav"]


@pytest.mark.parametrize(
    "text, message",
    [("", "empty text"), ("It is open 24/7.", "cannot read: '/'")],
)
def test_bad_text_is_an_error_naming_the_line(tiny_runs, tmp_path, capsys, text, message) -> None:
    rc = synth_main(
        [text, "--checkpoint", str(tiny_runs["parallel"] / "models" / "best.pt"), "-o", str(tmp_path / "x.wav")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "line 1" in err and message in err
    assert not (tmp_path / "x.wav").exists()


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys) -> None:
    rc = synth_main(["Hello.", "--checkpoint", str(tmp_path / "none.pt")])
    assert rc == 2 and "no such checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value",
    [("--batch-size", "0"), ("--griffin-lim-iters", "-3"), ("--length-scale", "0"), ("--batch-size", "many")],
)
def test_a_number_option_that_is_not_positive_is_a_usage_error_naming_it(tmp_path, capsys, option, value) -> None:
    argv = ["Hello.", "--checkpoint", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.wav"), option, value]
    with pytest.raises(SystemExit) as refused:
        synth_main(argv)
    assert refused.value.code == 2
    assert f"error: argument {option}: {value!r} is not a positive" in capsys.readouterr().err


@pytest.fixture
def two_speaker_checkpoint(tiny_runs, tmp_path) -> Path:
    """The tiny parallel run's checkpoint with two speaker names (the model is only ever asked
    for the default, the first, which it was trained on)."""
    ckpt = torch.load(tiny_runs["parallel"] / "models" / "best.pt", weights_only=True)
    ckpt["speakers"] = ["ava", "ben"]
    path = tmp_path / "two_speakers.pt"
    torch.save(ckpt, path)
    return path


def test_a_multi_speaker_model_without_speaker_says_which_voice_it_used(two_speaker_checkpoint, tmp_path, capsys):
    argv = [
        WORDS,
        "--checkpoint",
        str(two_speaker_checkpoint),
        "-o",
        str(tmp_path / "x.wav"),
        "--griffin-lim-iters",
        "4",
    ]
    assert synth_main(argv) == 0
    assert (
        "synth: no --speaker given; speaking as 'ava', the first of this model's 2 speakers (ava, ben); "
        "choose one with --speaker NAME"
    ) in capsys.readouterr().err.splitlines()


def reference_error(tiny_runs, tmp_path, capsys, reference: Path) -> str:
    """What synth prints on stderr for `--reference reference`; it must fail with exit 2, writing nothing."""
    out = tmp_path / "x.wav"
    argv = [WORDS, "--checkpoint", str(tiny_runs["parallel"] / "models" / "best.pt"), "-o", str(out)]
    assert synth_main([*argv, "--reference", str(reference)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_a_missing_reference_is_one_line_naming_it(tiny_runs, tmp_path, capsys) -> None:
    missing = tmp_path / "none.wav"
    assert (
        reference_error(tiny_runs, tmp_path, capsys, missing) == f"synth: error: --reference {missing}: no such file\n"
    )


def test_a_reference_that_is_a_folder_is_one_line_naming_it(tiny_runs, tmp_path, capsys) -> None:
    folder = tmp_path / "voice.wav"
    folder.mkdir()
    assert reference_error(tiny_runs, tmp_path, capsys, folder) == (
        f"synth: error: --reference {folder}: a folder, not an audio file\n"
    )


def test_a_reference_that_is_not_audio_is_one_line_naming_it(tiny_runs, tmp_path, capsys) -> None:
    notes = tmp_path / "notes.wav"
    notes.write_text("not a recording", encoding="utf-8")
    assert reference_error(tiny_runs, tmp_path, capsys, notes) == (
        f"synth: error: --reference {notes}: not an audio file libsndfile can read (Format not recognised.)\n"
    )


def test_a_reference_without_samples_is_one_line_naming_it(tiny_runs, tmp_path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 22050)
    assert reference_error(tiny_runs, tmp_path, capsys, empty) == (
        f"synth: error: --reference {empty}: no samples (an empty recording has no style to take on)\n"
    )


def test_a_reference_wav_changes_the_style_latent(tiny_runs, tiny_store) -> None:
    synth = Synthesizer.from_file(tiny_runs["parallel"] / "models" / "best.pt")
    wav = next((tiny_store.parent / "corpus" / "wavs").glob("*.wav"))
    mel, mask = synth.reference_latent_input(wav)
    latent, _ = synth.model.reference(mel, mask)
    assert latent.shape == (1, synth.config.latent) and latent.abs().sum() > 0
    with_ref = synth.synthesize([WORDS], None, reference_wav=wav)[0].mel
    without = synth.synthesize([WORDS], None)[0].mel
    assert with_ref.shape[1] == without.shape[1] and not np.allclose(with_ref, without)


def test_an_unseen_stress_variant_falls_back_to_the_same_phone() -> None:
    known = {"a", "ˈiː", "n"}
    assert nearest_symbol("ˌiː", known) == "ˈiː"
    assert nearest_symbol("aː", known) == "a"
    assert nearest_symbol("q", known) == "q"  # nothing close: encode reports it


class _Upsampler(torch.nn.Module):
    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # [B, n_mels, T] -> [B, 1, T * 256]
        return torch.tanh(mel.mean(1, keepdim=True)).repeat_interleave(256, dim=-1)


SETTINGS = MelSettings(22050, 1024, 256, 1024, 80, 0.0, 8000.0, 1e-5)


@pytest.fixture
def loaders_that_must_not_run(monkeypatch):
    """torch's loaders of exported files, made to fail the test if anything calls them."""

    def never(*args, **kwargs):
        raise AssertionError("an exported vocoder file was opened")

    monkeypatch.setattr(torch.export, "load", never)
    monkeypatch.setattr(torch.jit, "load", never)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_an_exported_vocoder_file_is_refused_without_being_opened(tmp_path, kind, loaders_that_must_not_run):
    # Loading either format can run code hidden in the file: torch.export.load falls back to
    # unrestricted pickle for a member weights_only refuses.
    path = tmp_path / ("voc.pt2" if kind == "pt2" else "voc.pt")
    if kind == "pt2":
        frames = torch.export.Dim("T", min=2, max=10000)
        torch.export.save(
            torch.export.export(_Upsampler(), (torch.zeros(1, 80, 10),), dynamic_shapes={"mel": {2: frames}}), path
        )
    else:
        torch.jit.script(_Upsampler()).save(str(path))
    with pytest.raises(UnsafeVocoderError, match="can run code"):
        load_vocoder(str(path), SETTINGS, 60)


def test_synth_with_an_exported_vocoder_file_is_one_line_and_exit_2(
    tiny_runs, tmp_path, capsys, loaders_that_must_not_run
) -> None:
    path = tmp_path / "voc.pt2"
    path.write_bytes(b"PK crafted")
    checkpoint = str(tiny_runs["autoregressive"] / "models" / "best.pt")
    rc = synth_main(["Hello.", "-o", str(tmp_path / "x.wav"), "--checkpoint", checkpoint, "--vocoder", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "can run code" in err and "Traceback" not in err
