"""Fixtures that make tiny corpora on disk: speech-like tones whose length follows the text."""
from __future__ import annotations

import copy

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.config import load_params

REPO = Path(__file__).resolve().parents[1]

TEXTS = [
    "The quiet farmer painted seven small boats.",
    "A tall teacher walked across the green field.",
    "Did the young doctor find the silver key?",
    "Every morning the baker opens the old shop early.",
    "My brother carried the heavy boxes upstairs.",
    "The river was cold, but the children swam anyway.",
    "She wrote a long letter to her oldest friend.",
    "Seven birds sat quietly on the garden wall.",
    "Why did the captain turn the ship around?",
    "The small dog slept under the kitchen table.",
    "He bought fresh bread and sweet apples at the market.",
    "A gentle wind moved the curtains in the evening.",
]

SECONDS_PER_LETTER = 0.06


def speech_like(seconds: float, sr: int, seed: int, edge: float = 0.1) -> np.ndarray:
    """A voiced, syllable-modulated tone of `seconds` with `edge` seconds of quiet at each end."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
    y = 0.25 * voiced * envelope + 0.005 * rng.standard_normal(n)
    quiet = np.zeros(int(edge * sr))
    return np.concatenate([quiet, y, quiet]).astype(np.float32)


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def write_corpus(root: Path, rows: list[tuple[str, str]], sr: int = 22050) -> Path:
    """An LJSpeech-layout corpus whose audio length is proportional to the text's letters."""
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (utt_id, text) in enumerate(rows):
        seconds = max(0.6, letters(text) * SECONDS_PER_LETTER)
        sf.write(root / "wavs" / f"{utt_id}.wav", speech_like(seconds, sr, seed=i), sr, subtype="PCM_16")
        lines.append(f"{utt_id}|{text}|{text}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Twelve clean utterances, one speaker, 22.05 kHz."""
    return write_corpus(tmp_path / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)])


@pytest.fixture
def params() -> dict:
    """The repository's params.yaml as a dict, for tests to copy and adjust."""
    return load_params(REPO / "params.yaml")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the project's sources (no data, no venv) for end-to-end runs."""
    dst = tmp_path / "repo"
    shutil.copytree(
        REPO,
        dst,
        ignore=shutil.ignore_patterns(".venv", "data", "reports", ".dvc", ".git", "__pycache__", "dvclive", "models", "*.egg-info"),
    )
    return dst


@pytest.fixture(scope="session")
def warm_librosa() -> None:
    """Compile librosa's numba kernels once in this process, so forked pool workers inherit them.

    Without it every validate/precompute worker pays the JIT cost (seconds) on its first file.
    """
    import librosa

    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    librosa.effects.trim(y, top_db=40.0, frame_length=1024, hop_length=256)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread in this process: on a busy 2-core machine more threads only contend
    (Griffin-Lim and reference mels run 10-100x slower under contention)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_SIZE = {
    "d_model": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ff": 64, "latent": 4,
    "reference_channels": 16, "postnet_channels": 16, "postnet_layers": 2, "prenet_dim": 16, "duration_channels": 16,
}


def tiny_params(params: dict, **train: object) -> dict:
    """params.yaml with a tiny model and a few-step CPU training run (train keys overridable)."""
    p = copy.deepcopy(params)
    p["model"]["sizes"]["tiny"] = dict(TINY_SIZE)
    p["train"].update({"batch_size": 3, "grad_accumulation": 1, "num_workers": 0, "val_every": 2, "max_steps": 6,
                       "checkpoint_every": 100, "device": "cpu", "lr": 1e-3, "warmup_steps": 2, **train})
    return p


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """features.zarr of the twelve clean utterances (val_share 0.25, a 2-step aligner that
    drops nothing), built once per test session for the tests that read features."""
    import dataclasses

    from pipeline.config import align_config, data_config, features_config
    from pipeline.precompute import precompute
    from pipeline.validate import validate_corpus, write_outputs

    params = load_params(REPO / "params.yaml")
    root = tmp_path_factory.mktemp("tiny_store")
    corpus = write_corpus(root / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)])
    fcfg = dataclasses.replace(features_config(params), workers=1, val_share=0.25)
    acfg = dataclasses.replace(align_config(params), steps=2, device="cpu", figures=0, drop_flagged=False)
    result = validate_corpus(corpus, data_config(params), fcfg.sample_rate, workers=1)
    write_outputs(result, root / "manifest.parquet", root / "reports")
    precompute(root / "manifest.parquet", root / "features.zarr", fcfg, acfg, progress=False)
    return root / "features.zarr"


@pytest.fixture(scope="session")
def tiny_runs(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A few-step training run of the tiny model per decoder on the tiny store: decoder ->
    folder with models/ and dvclive/ (for the synthesis and evaluation tests)."""
    from pipeline.fit import fit

    runs = {}
    for decoder in ("autoregressive", "parallel"):
        p = tiny_params(load_params(REPO / "params.yaml"), max_steps=6)
        p["model"]["decoder"] = decoder
        root = tmp_path_factory.mktemp(f"run_{decoder}")
        fit(tiny_store, p, root / "models", root / "dvclive", progress=False)
        runs[decoder] = root
    return runs
