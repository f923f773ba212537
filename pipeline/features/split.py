"""The train/validation split, decided by hashing each id.

An utterance's split depends only on its own id and the salt, so adding utterances to a
corpus never moves existing ones between splits (a model never trains on yesterday's
validation data).
"""

from __future__ import annotations

from pipeline.common.hashing import stable_hash

TRAIN, VAL, DROPPED = 0, 1, 2  # DROPPED: flagged by the aligner's outlier check
SPLIT_NAMES = ("train", "val", "dropped")


def split_of(utt_id: str, val_share: float, salt: str) -> int:
    """TRAIN or VAL for one id: a uniform number from sha256(salt|id) compared with val_share."""
    u = int(stable_hash(f"{salt}|{utt_id}", length=16), 16) / 2**64  # the digest's first 8 bytes
    return VAL if u < val_share else TRAIN
