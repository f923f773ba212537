"""One stable hash for cache keys, fingerprints and the split: the same input gives the same
hex digest on every machine, Python version and run (unlike hash(), which is salted per process)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(value: Any, length: int = 64) -> str:
    """SHA-256 of `value` as canonical JSON (sorted keys; non-JSON values by their str()), as
    `length` hex digits. Bytes and str are hashed as they are."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = json.dumps(value, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:length]
