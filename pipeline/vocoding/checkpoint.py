"""Vocoder checkpoints: what models/vocoder.pt holds, reading one safely, and opening the
vocoder that evaluate, synth and doctor use (`trained`, `griffin_lim`, or a refused file)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from model.mel import MelSettings
from model.vocoder import GriffinLimVocoder, TrainedVocoder, Vocoder, load_vocoder
from model.vocoder_generator import GeneratorConfig, VocoderGenerator
from pipeline.training.checkpoint import CheckpointError, read_checkpoint

FORMAT = "hamgara-vocoder/1"
TRAINED = "trained"
VOCODER_FILE = "vocoder.pt"  # the vocoder stage writes it beside the acoustic model's checkpoints
NEEDED = ("format", "generator", "generator_config", "phase_iters", "momentum", "mel")


class VocoderMismatchError(ValueError):
    """A vocoder made for other mel settings (or another sample rate) than the mels it is given."""


def generator_state(generator: VocoderGenerator, step: int, val_loss: float | None) -> dict[str, Any]:
    """The checkpoint of a generator alone: everything `load_generator` needs."""
    return {
        "format": FORMAT,
        "generator": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
        "generator_config": dataclasses.asdict(generator.config),
        "phase_iters": generator.phase_iters,
        "momentum": generator.momentum,
        "mel": dataclasses.asdict(generator.settings),
        "step": step,
        "val_loss": val_loss,
    }


def read_vocoder_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A vocoder checkpoint read with the weights-only unpickler and checked to be one."""
    ckpt = read_checkpoint(path, device)
    if "generator" not in ckpt and "model_config" in ckpt:
        raise CheckpointError(
            f"{path}: an acoustic-model checkpoint, not a vocoder (the vocoder stage writes models/vocoder.pt)"
        )
    missing = [k for k in NEEDED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a Hamgara vocoder checkpoint, it lacks {', '.join(missing)}")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path}: vocoder format {str(ckpt['format'])[:40]!r}, this Hamgara reads {FORMAT!r}")
    return ckpt


def mel_differences(made_for: MelSettings, given: MelSettings) -> list[str]:
    """`name: vocoder X, mels Y` for each mel setting that differs (floats within 1e-9 agree)."""
    out = []
    for f in dataclasses.fields(MelSettings):
        a, b = getattr(made_for, f.name), getattr(given, f.name)
        if not (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) if isinstance(a, float) else a == b):
            out.append(f"{f.name}: vocoder {a}, mels {b}")
    return out


def load_generator(path: Path, settings: MelSettings | None, device: torch.device | str = "cpu") -> VocoderGenerator:
    """The generator of a vocoder checkpoint, refused (VocoderMismatchError, naming both values
    of each difference) when `settings` are given and differ from the mel settings it was
    trained on; a damaged file is a CheckpointError."""
    ckpt = read_vocoder_checkpoint(path, device)
    try:
        made_for = MelSettings(**ckpt["mel"])
    except TypeError as e:
        raise CheckpointError(f"{path}: a damaged vocoder checkpoint (its mel settings: {e})") from e
    if settings is not None:
        differences = mel_differences(made_for, settings)
        if differences:
            raise VocoderMismatchError(
                f"{path}: this vocoder was trained on other mel settings than the acoustic model's "
                f"({'; '.join(differences)}): train it on this corpus (dvc repro vocoder) or use griffin_lim"
            )
    try:
        config = GeneratorConfig(**ckpt["generator_config"])
        generator = VocoderGenerator(made_for, config, int(ckpt["phase_iters"]), float(ckpt["momentum"]))
        generator.load_state_dict(ckpt["generator"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        raise CheckpointError(f"{path}: a damaged vocoder checkpoint ({' '.join(lines[:2])[:240]})") from e
    return generator.to(device)


def open_vocoder(
    spec: str,
    settings: MelSettings,
    griffin_lim_iters: int,
    device: torch.device | str,
    trained_path: Path,
) -> Vocoder:
    """`trained`: the generator at `trained_path`, checked against `settings`; `griffin_lim`;
    anything else is refused by model/vocoder.py's load_vocoder, saying why."""
    if spec == TRAINED:
        if not trained_path.is_file():
            raise CheckpointError(
                f"{trained_path}: no trained vocoder yet (dvc repro vocoder trains one; "
                "or use griffin_lim: eval.vocoder=griffin_lim, synth --vocoder griffin_lim)"
            )
        return TrainedVocoder(load_generator(trained_path, settings, device), device)
    return load_vocoder(spec, settings, griffin_lim_iters, device)


AUTO = "auto"


def beside(checkpoint: str | Path, vocoder: str | Path | None) -> Path:
    """The trained vocoder's path: `vocoder` when given, else vocoder.pt in the acoustic
    checkpoint's folder (models/best.pt -> models/vocoder.pt)."""
    return Path(vocoder) if vocoder is not None else Path(checkpoint).parent / VOCODER_FILE


def auto_vocoder(
    spec: str,
    settings: MelSettings,
    griffin_lim_iters: int,
    device: torch.device | str,
    trained_path: Path,
) -> tuple[Vocoder, str | None]:
    """`auto`: the trained vocoder at `trained_path` when there is one made for these mels,
    else Griffin-Lim, with a note saying why when a file was there but is not used; any other
    `spec` is `open_vocoder`'s (an explicit `trained` that cannot be used is an error)."""
    if spec != AUTO:
        return open_vocoder(spec, settings, griffin_lim_iters, device, trained_path), None
    if not trained_path.is_file():
        return GriffinLimVocoder(settings, griffin_lim_iters), None
    try:
        return open_vocoder(TRAINED, settings, griffin_lim_iters, device, trained_path), None
    except (CheckpointError, VocoderMismatchError) as e:
        return GriffinLimVocoder(settings, griffin_lim_iters), f"using Griffin-Lim: {e}"
