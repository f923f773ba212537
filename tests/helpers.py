"""Helpers shared by the tests: the committed params, tiny corpora and tiny training params.

The suite never reads the workspace's params.yaml: `dvc exp run -S ...` (what `./setup.sh
repro` runs) writes its overrides into it, so a test that read it would test the last
experiment instead of the documented defaults. `committed_params` reads the version in git.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml

from model.config import ModelConfig
from model.tts import TTSBatch
from pipeline.config import DemoConfig, data_config

REPO = Path(__file__).resolve().parents[1]


def committed_params(repo: Path = REPO) -> dict[str, Any]:
    """params.yaml as committed at HEAD of `repo` (the documented defaults), whatever the
    workspace copy says now. Outside a git checkout (an unpacked archive) the workspace copy
    is all there is, and it is read instead. A developer changing params.yaml's keys together
    with the configs points HAMGARA_TEST_PARAMS at the edited file until it is committed."""
    override = os.environ.get("HAMGARA_TEST_PARAMS")
    if override:
        return yaml.safe_load(Path(override).read_text(encoding="utf-8"))
    try:
        text = subprocess.run(
            ["git", "-C", str(repo), "show", "HEAD:params.yaml"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        text = (repo / "params.yaml").read_text(encoding="utf-8")
    params = _parsed(text)
    assert isinstance(params, dict), f"{repo}/params.yaml: top level must be a mapping"
    return copy.deepcopy(params)  # the caller's to change


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> Any:
    """params.yaml's text parsed, once per distinct text: the suite asks for the committed params
    hundreds of times, and parsing them takes tens of milliseconds a time."""
    return yaml.safe_load(text)


TINY_SIZE = {
    "d_model": 32,
    "heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "ff": 64,
    "latent": 4,
    "reference_channels": 16,
    "postnet_channels": 16,
    "postnet_layers": 2,
    "prenet_dim": 16,
    "duration_channels": 16,
}


def tiny_params(params: dict[str, Any], **train: object) -> dict[str, Any]:
    """params with a tiny model and a few-step CPU training run (train keys overridable)."""
    p = copy.deepcopy(params)
    p["model"]["sizes"]["tiny"] = dict(TINY_SIZE)
    p["train"].update(
        {
            "batch_size": 3,
            "grad_accumulation": 1,
            "num_workers": 0,
            "val_every": 2,
            "max_steps": 6,
            "checkpoint_every": 100,
            "device": "cpu",
            "lr": 1e-3,
            "warmup_steps": 2,
            **train,
        }
    )
    return p


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


def small_config(decoder: str, **changes: object) -> ModelConfig:
    """A model small enough to run many times per test on a CPU."""
    cfg = ModelConfig(
        decoder=decoder,
        n_symbols=30,
        n_speakers=2,
        n_languages=2,
        n_mels=16,
        d_model=32,
        heads=2,
        encoder_layers=2,
        decoder_layers=2,
        ff=64,
        latent=4,
        reference_channels=16,
        postnet_channels=16,
        postnet_layers=3,
        prenet_dim=16,
        duration_channels=16,
        dropout=0.1,
        prenet_dropout=0.5,
        reduction=2,
        attention_window=2,
        max_length_factor=2.0,
        optional_ids=(1,),
    )
    return dataclasses.replace(cfg, **changes)


def make_batch(token_lens: list[int], frame_lens: list[int], n_mels: int = 16, seed: int = 0) -> TTSBatch:
    """Random tokens and mels with durations that sum to each utterance's frames."""
    g = torch.Generator().manual_seed(seed)
    b, n, t = len(token_lens), max(token_lens), max(frame_lens)
    tokens = torch.zeros(b, n, dtype=torch.long)
    durations = torch.zeros(b, n, dtype=torch.long)
    for i, (nt, nf) in enumerate(zip(token_lens, frame_lens)):
        tokens[i, :nt] = torch.randint(2, 30, (nt,), generator=g)
        cuts = torch.sort(torch.randperm(nf - 1, generator=g)[: nt - 1] + 1).values
        bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([nf])])
        durations[i, :nt] = bounds[1:] - bounds[:-1]
    token_mask = torch.arange(n)[None] < torch.tensor(token_lens)[:, None]
    frame_mask = torch.arange(t)[None] < torch.tensor(frame_lens)[:, None]
    mels = torch.randn(b, t, n_mels, generator=g) * frame_mask[..., None]
    return TTSBatch(tokens, token_mask, torch.arange(b) % 2, torch.arange(b) % 2, mels, frame_mask, durations)


VENV_BIN = Path(sys.executable).parent  # not resolved: the venv's python, whose folder has dvc


def run(repo: Path, *cmd: str) -> str:
    """Run a command in `repo` with the venv first on PATH (so dvc's `python` is the venv's)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def set_params(repo: Path, **changes: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def demo_config(**changes: object) -> DemoConfig:
    """The committed params' demo corpus settings (one voice, cmu_us_slt_arctic_hts) with changes;
    without the unseen-words set or validation.txt sentences unless a change asks for them
    (festival's time is the tests' cost)."""
    none = {"unseen_utterances": 0, "validation_utterances": 0}
    return dataclasses.replace(data_config(committed_params()).demo, **{**none, **changes})


# The vocoder section for tests, every key: a few steps of a tiny generator on the CPU.
TINY_VOCODER: dict[str, Any] = {
    "dim": 16,
    "intermediate": 32,
    "layers": 2,
    "kernel": 7,
    "phase_iters": 2,
    "momentum": 0.99,
    "segment_frames": 8,
    "batch_size": 2,
    "lr": 2.0e-3,
    "warmup_steps": 1,
    "max_steps": 6,
    "spectral_convergence_weight": 1.0,
    "grad_clip": 1.0,
    "val_every": 2,
    "samples": 1,
    "checkpoint_every": 100,
    "max_nonfinite": 10,
    "seed": 1234,
    "device": "cpu",
    "mixed_precision": True,
    "init_from": None,
}


def table_steps(live: Path) -> dict[str, list[int]]:
    """Every dvclive .tsv under `live`: its relative path -> the steps of its rows."""
    metrics = live / "plots" / "metrics"
    out = {}
    for table in sorted(metrics.rglob("*.tsv")):
        rows = table.read_text(encoding="utf-8").splitlines()
        at = rows[0].split("\t").index("step")
        out[str(table.relative_to(metrics))] = [int(r.split("\t")[at]) for r in rows[1:]]
    return out
