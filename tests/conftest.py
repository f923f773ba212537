"""Fixtures that make tiny corpora on disk: speech-like tones whose length follows the text."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, TEXTS, TINY_VOCODER, committed_params, tiny_params, write_corpus


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Twelve clean utterances, one speaker, 22.05 kHz."""
    return write_corpus(tmp_path / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)])


@pytest.fixture
def params() -> dict:
    """The committed params.yaml (the documented defaults) as a dict, for tests to copy and adjust."""
    return committed_params()


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the project's sources (no data, no venv) for end-to-end runs."""
    dst = tmp_path / "repo"
    # Top-level outputs and caches stay behind (pipeline/data/ is code and must come along).
    skipped = {".venv", "data", "reports", ".dvc", ".git", "dvclive", "models"}
    shutil.copytree(
        REPO,
        dst,
        ignore=lambda folder, names: [
            n for n in names if (Path(folder) == REPO and n in skipped) or n == "__pycache__" or n.endswith(".egg-info")
        ],
    )
    # The committed defaults, not the workspace's params.yaml (an experiment may have rewritten it).
    (dst / "params.yaml").write_text(yaml.safe_dump(committed_params(), sort_keys=False), encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def warm_librosa() -> None:
    """Compile librosa's numba kernels once in this process, for the validate and precompute
    runs that measure files here (one worker: no pool).

    Without it each such test pays the JIT cost (about a second) on its first file. Pool workers
    start from a fork server and compile their own (pipeline/common/runtime.py says why).
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


def _tiny_store(root: Path, unseen: int = 0) -> Path:
    """features.zarr of the twelve clean utterances under `root` (val_share 0.25, a 2-step
    aligner that drops nothing), the last `unseen` of them listed in the corpus's unseen.txt,
    through the real validate and precompute."""
    import dataclasses

    from pipeline.config import align_config, data_config, features_config
    from pipeline.data.validation import validate_corpus, write_outputs
    from pipeline.features.build import precompute

    params = committed_params()
    rows = [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)]
    corpus = write_corpus(root / "corpus", rows)
    if unseen:
        (corpus / "unseen.txt").write_text("# held out\n" + "".join(f"{i}\n" for i, _ in rows[-unseen:]))
    fcfg = dataclasses.replace(features_config(params), workers=1, val_share=0.25)
    acfg = dataclasses.replace(align_config(params), steps=2, device="cpu", figures=0, drop_flagged=False)
    result = validate_corpus(corpus, data_config(params), fcfg.sample_rate, workers=1)
    write_outputs(result, root / "manifest.parquet", root / "reports")
    precompute(root / "manifest.parquet", root / "features.zarr", fcfg, acfg, progress=False)
    return root / "features.zarr"


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """features.zarr of the twelve clean utterances, built once per test session for the tests
    that read features."""
    return _tiny_store(tmp_path_factory.mktemp("tiny_store"))


@pytest.fixture(scope="session")
def tiny_unseen_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny store's twelve utterances with the last two listed in the corpus's unseen.txt
    (split unseen)."""
    return _tiny_store(tmp_path_factory.mktemp("tiny_unseen_store"), unseen=2)


@pytest.fixture(scope="session")
def tiny_runs(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A few-step training run of the tiny model per decoder on the tiny store: decoder ->
    folder with models/ and dvclive/ (for the synthesis and evaluation tests)."""
    from pipeline.training.loop import fit

    runs = {}
    for decoder in ("autoregressive", "parallel"):
        p = tiny_params(committed_params(), max_steps=6)
        p["model"]["decoder"] = decoder
        root = tmp_path_factory.mktemp(f"run_{decoder}")
        fit(tiny_store, p, root / "models", root / "dvclive", progress=False)
        runs[decoder] = root
    return runs


@pytest.fixture(scope="session")
def tiny_vocoder(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step run of a tiny vocoder generator on the tiny store: its models/vocoder.pt."""
    from pipeline.vocoding.loop import fit_vocoder

    params = committed_params()
    params["vocoder"] = {**TINY_VOCODER, "max_steps": 3, "val_every": 3, "samples": 0}
    root = tmp_path_factory.mktemp("vocoder")
    manifest = tiny_store.parent / "manifest.parquet"
    fit_vocoder(tiny_store, manifest, params, root / "models", root / "live", progress=False)
    return root / "models" / "vocoder.pt"


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium (a selenium WebDriver; tests/browser.py has the checks) for the
    session's page tests. Missing chromium or chromedriver fails the tests that use it, naming
    `./setup.sh test`: a skip would let CI pass without ever opening a page."""
    from browser import BrowserError, start_chromium

    try:
        driver = start_chromium()
    except BrowserError as e:
        pytest.fail(str(e), pytrace=False)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def tiny_voices(tiny_runs: dict[str, Path], tiny_vocoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny runs exported (hamgara export): decoder -> (its torch Synthesizer, its runtime
    Voice). The autoregressive voice carries the tiny trained vocoder, the parallel one
    Griffin-Lim, so both vocoder paths of the runtime are exercised."""
    from pipeline.evaluation.synthesizer import Synthesizer
    from pipeline.exporting.voice import export_voice
    from pipeline.runtime import Voice
    from pipeline.vocoding.checkpoint import load_generator

    voices = {}
    for decoder, run in tiny_runs.items():
        synth = Synthesizer.from_file(run / "models" / "best.pt")
        generator = load_generator(tiny_vocoder, synth.mel_settings) if decoder == "autoregressive" else None
        folder = tmp_path_factory.mktemp(f"voice_{decoder}") / "voice"
        identity = {"checkpoint": str(run / "models" / "best.pt"), "step": synth.step, "checkpoint_sha256": "0" * 16}
        export_voice(synth, generator, folder, identity, {"wer_gap": 0.1, "utterances": 3})
        voices[decoder] = (synth, Voice.load(folder))
    return voices
