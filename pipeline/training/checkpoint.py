"""Reading a Hamgara checkpoint: the one loader that synth, evaluate, doctor and resume share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that is missing or lacks what synthesis needs."""


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint file; a missing or foreign file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (train first: dvc repro train, or pass --checkpoint)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # torch raises several kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a Hamgara checkpoint (it holds a {type(ckpt).__name__})")
    needed = ("model_config", "symbols", "frontend", "languages", "speakers", "mel", "mel_mean", "mel_std")
    missing = [k for k in needed if k not in ckpt] + ([] if "model" in ckpt or "trainer" in ckpt else ["model"])
    if missing:
        raise CheckpointError(f"{path}: not a Hamgara checkpoint, it lacks {', '.join(missing)}")
    return ckpt


def model_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The model weights of a checkpoint: best.pt stores them as `model`, last.pt inside the
    trainer state."""
    return ckpt["model"] if "model" in ckpt else ckpt["trainer"]["model"]
