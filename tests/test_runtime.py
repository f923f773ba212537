"""pipeline/runtime: the exported voice said without torch, with torch's arithmetic."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers import REPO
from model.ar_decoder import expected_tokens, window_mask
from model.duration import durations_from_log, length_regulate
from model.mel import MelSettings
from model.vocoder_generator import GeneratorConfig, VocoderGenerator
from pipeline.runtime import decoding
from pipeline.runtime.phase import PhaseReconstruction
from pipeline.synth import main as synth_main

WORDS = "The small dog slept."


def test_importing_the_runtime_and_the_server_loads_no_torch() -> None:
    code = (
        "import sys, pipeline.runtime, pipeline.serving.app, pipeline.serve, model.textnorm; "
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_torch_free_check_would_see_torch() -> None:
    # Planted: a module that imports torch is caught by the same check.
    code = "import sys, model.mel; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 1


def test_durations_are_rounded_as_torch_rounds_them() -> None:
    rng = np.random.default_rng(0)
    logs = rng.uniform(-1, 3.5, 300).astype(np.float32)
    # Predictions whose float32 exp lands on (or a bit off) a .5, where float32 exps of
    # different libraries round apart.
    logs[:20] = np.log(np.arange(20) + 0.5 + 1).astype(np.float32)
    tokens = rng.integers(1, 9, 300)
    optional = [3]
    for scale in (1.0, 0.8, 1.37):
        expected = durations_from_log(torch.from_numpy(logs)[None], torch.ones(1, 300, dtype=torch.bool), scale)[0]
        expected = torch.where(torch.from_numpy(tokens) != 3, expected.clamp_min(1), expected).numpy()
        assert np.array_equal(decoding.durations(logs, tokens, optional, scale), expected)


def test_frame_tokens_equal_the_length_regulator() -> None:
    durations = np.array([2, 0, 3, 1, 0, 4])
    hidden = torch.arange(6, dtype=torch.float32)[None, :, None]
    frames = 14  # past the total (10): invalid frames
    regulated = length_regulate(hidden, torch.from_numpy(durations)[None], frames)[0, :, 0].numpy()
    index, valid = decoding.frame_tokens(durations, frames)
    assert np.array_equal(index.astype(np.float32) * valid, regulated)
    assert valid.tolist() == [1.0] * 10 + [0.0] * 4


def test_the_attention_window_equals_the_decoders() -> None:
    durations = np.array([3, 0, 5, 2, 6, 1, 4])
    d = torch.from_numpy(durations)[None]
    mask = torch.ones(1, 7, dtype=torch.bool)
    for step in range(9):
        expected = window_mask(expected_tokens(d, torch.tensor([step]), 3), mask, 2)
        assert np.array_equal(decoding.window(durations, step, 3, 2), expected.numpy())


def test_the_step_limit_is_the_decoders_length_cap() -> None:
    for total, factor, r in [(1, 2.0, 3), (100, 2.0, 3), (77, 1.5, 2), (0, 2.0, 1)]:
        durations = np.array([total])
        predicted = torch.tensor([max(total, 1)])
        expected = int(torch.ceil(factor * predicted.max().float() / r))
        assert decoding.step_limit(durations, factor, r) == expected


def test_numpy_phase_reconstruction_matches_the_generators() -> None:
    settings = MelSettings(22050, 1024, 256, 1024, 80, 0.0, 8000.0, 1e-5)
    generator = VocoderGenerator(settings, GeneratorConfig(8, 16, 1, 7), phase_iters=8, momentum=0.99)
    magnitude = torch.rand(1, 513, 40) * 5
    expected = generator.phase_from_magnitude(magnitude)[0].numpy()
    phase = PhaseReconstruction(1024, 256, 1024, iterations=8, momentum=0.99)
    wave = phase(magnitude[0].T.numpy())
    assert wave.shape == expected.shape
    assert np.abs(wave - expected).max() < 1e-3 * np.abs(expected).max()


def test_a_hop_that_does_not_divide_the_fft_still_inverts_exactly() -> None:
    phase = PhaseReconstruction(1000, 300, 900, iterations=0, momentum=0.0)
    wave = np.random.default_rng(1).standard_normal(300 * 30).astype(np.float32)
    spectrum = phase.stft(wave)
    assert np.abs(phase.istft(spectrum, phase.inverse_envelope(len(spectrum))) - wave).max() < 1e-4


def test_synth_with_a_voice_folder_writes_speech(tiny_voices, tmp_path, capsys) -> None:
    _, voice = tiny_voices["autoregressive"]
    out = tmp_path / "hello.wav"
    assert synth_main(["--voice", str(voice.folder), WORDS, "-o", str(out)]) == 0
    wave, sr = sf.read(out)
    assert sr == voice.sample_rate and len(wave) > 0 and np.abs(wave).max() > 0
    assert "real-time factor" in capsys.readouterr().out


def test_synth_with_a_voice_refuses_the_torch_only_options(tiny_voices, tmp_path, capsys) -> None:
    _, voice = tiny_voices["parallel"]
    with pytest.raises(SystemExit) as exit_info:
        synth_main(
            ["--voice", str(voice.folder), WORDS, "--checkpoint", "models/best.pt", "-o", str(tmp_path / "a.wav")]
        )
    assert exit_info.value.code == 2
    assert "--checkpoint cannot be used with --voice" in capsys.readouterr().err


def test_synth_with_a_missing_voice_names_it(tmp_path, capsys) -> None:
    assert synth_main(["--voice", str(tmp_path / "gone"), WORDS, "-o", str(tmp_path / "a.wav")]) == 2
    assert "gone" in capsys.readouterr().err


def test_a_long_text_is_said_in_pieces_joined_with_pauses(tiny_voices) -> None:
    _, voice = tiny_voices["parallel"]
    plan = voice.plan([f"{WORDS} {WORDS} {WORDS}"])
    chunks = list(voice.chunks(plan))
    assert len(chunks) == len(plan.ids) == 3
    pause = len(voice.pause())
    assert all(not np.any(chunk[:pause]) for chunk in chunks[1:])  # every later chunk starts with the pause


def test_an_unknown_speaker_is_refused_before_any_audio(tiny_voices) -> None:
    from model.text import FrontendError

    _, voice = tiny_voices["parallel"]
    with pytest.raises(FrontendError, match="nobody"):
        voice.plan([WORDS], speaker="nobody")
