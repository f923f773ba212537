"""The train/validation split, decided by hashing each id.

An utterance's split depends only on its own id and the salt, so adding utterances to a
corpus never moves existing ones between splits (a model never trains on yesterday's
validation data).
"""

from __future__ import annotations

import hashlib

TRAIN, VAL, DROPPED = 0, 1, 2  # DROPPED: flagged by the aligner's outlier check
SPLIT_NAMES = ("train", "val", "dropped")


def split_of(utt_id: str, val_share: float, salt: str) -> int:
    """TRAIN or VAL for one id: a uniform number from sha256(salt|id) compared with val_share."""
    digest = hashlib.sha256(f"{salt}|{utt_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return VAL if u < val_share else TRAIN
