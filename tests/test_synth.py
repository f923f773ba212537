"""`hamgara synth`: text to a wav from a checkpoint alone, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.mel import MelSettings
from model.vocoder import ExportedVocoder, load_vocoder
from pipeline.evaluation.synthesizer import Synthesizer, nearest_symbol
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
    [("", "empty text"), ("It costs 5 dollars.", "cannot read: '5'")],
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


def test_an_exported_neural_vocoder_plugs_into_the_same_interface(tmp_path) -> None:
    frames = torch.export.Dim("T", min=2, max=10000)
    program = torch.export.export(_Upsampler(), (torch.zeros(1, 80, 10),), dynamic_shapes={"mel": {2: frames}})
    torch.export.save(program, tmp_path / "voc.pt2")
    vocoder = load_vocoder(str(tmp_path / "voc.pt2"), SETTINGS, 60)
    assert isinstance(vocoder, ExportedVocoder) and vocoder.sample_rate == 22050
    assert vocoder(torch.zeros(10, 80)).shape == (2560,)
    assert vocoder(torch.zeros(33, 80)).shape == (33 * 256,)  # any length: T is dynamic


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_vocoder_is_loaded_too(tmp_path) -> None:
    torch.jit.script(_Upsampler()).save(str(tmp_path / "voc.pt"))
    assert load_vocoder(str(tmp_path / "voc.pt"), SETTINGS, 60)(torch.zeros(10, 80)).shape == (2560,)


def test_a_foreign_or_missing_vocoder_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a torch.export file"):
        load_vocoder(str(bad), SETTINGS, 60)
    with pytest.raises(FileNotFoundError):
        load_vocoder(str(Path(tmp_path) / "missing.pt"), SETTINGS, 60)
