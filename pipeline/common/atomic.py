"""Atomic file and folder writes: write to a temporary sibling, then rename.

A reader (or a later DVC stage) therefore sees either the old complete file or the new
complete file, never a half-written one, even when the writer is killed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success rename it over `target`.

    Works for files and folders. On an exception the temporary path is removed and
    `target` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            # rename() cannot replace a non-empty folder: move the old one aside first.
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(target: str | Path, text: str) -> None:
    """Atomically write `text` (UTF-8) to `target`."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON to `target`."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def write_wav(target: str | Path, wave: Any, sample_rate: int) -> None:
    """Atomically write a mono float wave as 16-bit PCM WAV (clipped to [-1, 1])."""
    import numpy as np
    import soundfile as sf

    with atomic_path(target) as tmp:
        sf.write(
            tmp, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
        )
