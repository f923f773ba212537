"""Reading a Hamgara checkpoint: the one loader that synth, evaluate, doctor and resume share.

Every checkpoint is read with torch's weights-only unpickler: tensors and plain data (dicts,
lists, tuples, numbers, strings) load, anything else is refused before it is built. A
checkpoint is how voices are passed around, so a file made by someone else must never be able
to run code when it is opened; ours hold nothing else (the RNG states are stored as tensors
and plain numbers for this reason, see Trainer.state_dict).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe, or lacks what synthesis needs."""


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read an acoustic-model checkpoint file safely (weights only: no code in it can run); a
    missing, damaged, unsafe or foreign file is a CheckpointError naming it and the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (train first: dvc repro train, or pass --checkpoint)")
    ckpt = read_checkpoint(path, device)
    needed = ("model_config", "symbols", "frontend", "languages", "speakers", "mel", "mel_mean", "mel_std")
    missing = [k for k in needed if k not in ckpt] + ([] if "model" in ckpt or "trainer" in ckpt else ["model"])
    if missing:
        raise CheckpointError(f"{path}: not a Hamgara checkpoint, it lacks {', '.join(missing)}")
    return ckpt


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Any Hamgara checkpoint (acoustic model or vocoder) read with the weights-only unpickler:
    a dict, or a CheckpointError saying why the file is unsafe, damaged or not one."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: not a safe Hamgara checkpoint: {_unsafe_reason(e)}; it was not loaded "
            "(use a checkpoint written by this Hamgara version)"
        ) from e
    except Exception as e:  # torch raises several kinds for a file that is not a checkpoint
        why = "the file is empty" if path.stat().st_size == 0 else _first_line(e)
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({why}): truncated, damaged or not a torch file"
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a Hamgara checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def _unsafe_reason(e: Exception) -> str:
    """What the weights-only unpickler refused, in a few words (torch's own message is a page
    of advice to load the file unsafely, which is exactly what we must not suggest)."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it would build or call {found.group(1)}, which is neither a tensor nor plain data"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    detail = found.group(1).strip() if found else _first_line(e)
    return f"its contents are not tensors and plain data ({detail})"


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message with its type, or the type alone."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return f"{type(e).__name__}: {lines[0].split('. ')[0].rstrip('.')[:200]}"


def model_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The model weights of a checkpoint: best.pt stores them as `model`, last.pt inside the
    trainer state."""
    return ckpt["model"] if "model" in ckpt else ckpt["trainer"]["model"]
