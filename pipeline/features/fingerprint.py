"""What identifies a features store's inputs: the key a resumed partial store and a cached
aligner must match."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.common.hashing import stable_hash_parts
from pipeline.config import FeaturesConfig
from pipeline.data.audio import IMPLICIT_TRIM_FRAMES
from pipeline.features.store import FORMAT_VERSION

# Knobs that change how fast features are built, never what they are.
_NOT_IN_FINGERPRINT = ("workers", "chunk_frames")


def features_record(cfg: FeaturesConfig) -> dict[str, Any]:
    """The features config as a store records it.

    Knobs that became params later are left out while they hold the value they had when they
    were implicit, so stores and aligner caches built before them keep their keys and bytes.
    """
    record = dataclasses.asdict(cfg)
    for name, implicit in IMPLICIT_TRIM_FRAMES.items():
        if record[name] == implicit:
            del record[name]
    return record


def fingerprint(cfg: FeaturesConfig, manifest_path: Path) -> str:
    """Identifies the features' inputs: the features config (less knobs that do not change
    the data), the manifest and the store format."""
    relevant = {k: v for k, v in features_record(cfg).items() if k not in _NOT_IN_FINGERPRINT}
    return stable_hash_parts([relevant, manifest_path.read_bytes(), str(FORMAT_VERSION)])
