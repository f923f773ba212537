"""The train/validation split, decided by hashing each id.

An utterance's split depends only on its own id and the salt, so adding utterances to a
corpus never moves existing ones between splits (a model never trains on yesterday's
validation data). One exception, for multi-speaker corpora: a speaker the hash sends wholly
to training would never be evaluated, so `split_corpus` moves that speaker's lowest-hash
utterance (the one nearest the line) to validation. That choice depends only on the speaker's
own ids, so it moves only when utterances of that same speaker are added.

A third set is the corpus's own choice, not the hash's: ids the corpus lists in `unseen.txt`
(see pipeline/data/metadata.py) are UNSEEN, sentences kept out of training and validation
alike so that evaluate can score text the model never had (`wer.unseen`); ids it lists in
`validation.txt` are VAL whatever their draw (sentences chosen for scoring).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.common.hashing import stable_hash

TRAIN, VAL, DROPPED, UNSEEN = 0, 1, 2, 3  # DROPPED: flagged by the aligner's outlier check
SPLIT_NAMES = ("train", "val", "dropped", "unseen")


def split_draw(utt_id: str, salt: str) -> float:
    """The id's uniform number in [0, 1) from sha256(salt|id) (the digest's first 8 bytes)."""
    return int(stable_hash(f"{salt}|{utt_id}", length=16), 16) / 2**64


def split_of(utt_id: str, val_share: float, salt: str) -> int:
    """TRAIN or VAL for one id: its draw compared with val_share."""
    return VAL if split_draw(utt_id, salt) < val_share else TRAIN


def split_corpus(
    ids: Sequence[str],
    speakers: Sequence[str],
    val_share: float,
    salt: str,
    unseen: Sequence[bool] | None = None,
    validation: Sequence[bool] | None = None,
) -> np.ndarray:
    """TRAIN/VAL/UNSEEN codes of a corpus: UNSEEN where `unseen` says so, VAL where `validation`
    (the corpus's validation.txt) says so, else `split_of` per id; then every speaker with at
    least two trainable utterances and none in validation gives its lowest-draw one to
    validation (with val_share 0 nothing is moved: no validation was asked for). An unseen
    utterance never counts as a speaker's validation."""
    draws = np.array([split_draw(i, salt) for i in ids])
    splits = np.where(draws < val_share, VAL, TRAIN).astype(np.int8)
    if validation is not None:
        splits[np.asarray(validation, dtype=bool)] = VAL
    held = np.zeros(len(ids), dtype=bool) if unseen is None else np.asarray(unseen, dtype=bool)
    splits[held] = UNSEEN
    if val_share <= 0:
        return splits
    speaker_of = np.asarray(speakers)
    for speaker in dict.fromkeys(speakers):
        members = np.flatnonzero((speaker_of == speaker) & ~held)
        if len(members) >= 2 and not (splits[members] == VAL).any():
            splits[members[np.argmin(draws[members])]] = VAL
    return splits
