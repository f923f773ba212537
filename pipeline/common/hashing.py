"""One stable hash for cache keys, fingerprints and the split: the same input gives the same
hex digest on every machine, Python version and run (unlike hash(), which is salted per process)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _canonical_bytes(value: Any) -> bytes:
    """Bytes as they are, str as UTF-8, anything else as canonical JSON (sorted keys; non-JSON
    values by their str())."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True, default=str).encode("utf-8")


def stable_hash(value: Any, length: int = 64) -> str:
    """SHA-256 of `value` as canonical JSON (sorted keys; non-JSON values by their str()), as
    `length` hex digits. Bytes and str are hashed as they are."""
    return hashlib.sha256(_canonical_bytes(value)).hexdigest()[:length]


def stable_hash_parts(parts: Iterable[Any], length: int = 64) -> str:
    """SHA-256 of several values one after another (each as `stable_hash` reads it), as
    `length` hex digits: for keys made of a few inputs without joining them in memory first."""
    h = hashlib.sha256()
    for part in parts:
        h.update(_canonical_bytes(part))
    return h.hexdigest()[:length]


def file_digest(path: Path, length: int = 64) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB pieces, as `length` hex digits; a missing file
    is a FileNotFoundError naming it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()[:length]
