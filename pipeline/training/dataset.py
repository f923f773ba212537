"""Training data from features.zarr: random access per utterance, length-bucketed batches.

The store is opened lazily in each process (DataLoader workers included), and each item
reads only its own slices. Batches group utterances of similar length so that little of a
batch is padding; the order of batches is shuffled per epoch from a seed, and a batch list
can be sharded over data-parallel ranks (every rank gets the same number of batches).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from model.layers import lengths_to_mask
from model.tts import TTSBatch
from pipeline.features.store import FeatureStore


class FeatureDataset(Dataset):
    """Utterances of the given splits (codes of pipeline/features/split.py), mels normalized with the
    store's training-split statistics."""

    def __init__(self, path: str | Path, splits: Sequence[int]) -> None:
        self.path = Path(path)
        store = FeatureStore(self.path)
        self.indices = np.flatnonzero(np.isin(store.array("split"), list(splits)))
        self.frames = store.frames()[self.indices]
        self.mean = np.asarray(store.attrs["mel_mean"], dtype=np.float32)
        self.std = np.asarray(store.attrs["mel_std"], dtype=np.float32)
        self.speaker = store.array("speaker")
        self.language = store.array("language")
        self._store: FeatureStore | None = None  # opened per process, on first use

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to DataLoader workers by pickling: they open the store themselves.
        return {**self.__dict__, "_store": None}

    def __getitem__(self, k: int) -> dict[str, Any]:
        if self._store is None:
            self._store = FeatureStore(self.path)
        i = int(self.indices[k])
        mel = (self._store.mel(i) - self.mean) / self.std
        return {
            "index": i,
            "tokens": torch.from_numpy(self._store.tokens(i).astype(np.int64)),
            "durations": torch.from_numpy(self._store.durations(i).astype(np.int64)),
            "mel": torch.from_numpy(mel.astype(np.float32)),
            "speaker": int(self.speaker[i]),
            "language": int(self.language[i]),
        }


def collate(items: list[dict[str, Any]]) -> tuple[TTSBatch, float]:
    """Pad a list of items into a TTSBatch; also the share of the mel frames that is padding."""
    b = len(items)
    n = max(len(it["tokens"]) for it in items)
    t = max(it["mel"].shape[0] for it in items)
    m = items[0]["mel"].shape[1]
    tokens = torch.zeros(b, n, dtype=torch.long)
    durations = torch.zeros(b, n, dtype=torch.long)
    mels = torch.zeros(b, t, m)
    token_lens = torch.tensor([len(it["tokens"]) for it in items])
    frame_lens = torch.tensor([it["mel"].shape[0] for it in items])
    for k, it in enumerate(items):
        tokens[k, : token_lens[k]] = it["tokens"]
        durations[k, : token_lens[k]] = it["durations"]
        mels[k, : frame_lens[k]] = it["mel"]
    batch = TTSBatch(
        tokens=tokens,
        token_mask=lengths_to_mask(token_lens, n),
        speakers=torch.tensor([it["speaker"] for it in items]),
        languages=torch.tensor([it["language"] for it in items]),
        mels=mels,
        frame_mask=lengths_to_mask(frame_lens, t),
        durations=durations,
    )
    return batch, 1.0 - float(frame_lens.sum()) / (b * t)


def speaker_draw_weights(speakers: np.ndarray, balance: float) -> np.ndarray:
    """Each utterance's probability of being drawn, such that speaker s's share of the draws is
    proportional to n_s ** (1 - balance): 0 = each utterance alike (a speaker's share is its
    share of the corpus), 1 = each speaker alike, in between a tempered mix (the temperature
    sampling of multilingual models). Within a speaker every utterance is equally likely."""
    _, inverse, counts = np.unique(np.asarray(speakers), return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** -balance
    return weights / weights.sum()


class BucketBatchSampler:
    """Batches of similar-length utterances; shuffled per epoch; sharded over ranks.

    Utterances are ordered by length (ties broken by a seeded shuffle), cut into batches, and
    the batches shuffled (seed + epoch). With `world_size` > 1 each rank takes every
    world_size-th batch, the list first padded by repeating batches so that every rank gets
    the same count (DistributedSampler's contract). The list `batches(epoch)` returns is what
    the DataLoader takes as its batch_sampler, cut at the saved position on resume.

    With `speakers` and a `speaker_balance` above 0, an epoch is instead as many utterances
    drawn with replacement (seed + epoch) by `speaker_draw_weights`, so that a small speaker is
    seen more often than its share of the corpus; the draws are then bucketed as above."""

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        speakers: np.ndarray | None = None,
        speaker_balance: float = 0.0,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.weights = (
            speaker_draw_weights(speakers, speaker_balance) if speakers is not None and speaker_balance > 0 else None
        )

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches for `epoch`, deterministically."""
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.lengths)
        if self.weights is not None and self.shuffle:
            order = rng.choice(n, size=n, replace=True, p=self.weights)
        else:
            order = rng.permutation(n) if self.shuffle else np.arange(n)
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        if self.world_size > 1:
            short = -len(batches) % self.world_size
            batches = batches + batches[:short]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __len__(self) -> int:
        n = -(-len(self.lengths) // self.batch_size)
        return -(-n // self.world_size)


def accumulation_groups(
    loader: Iterable[tuple[TTSBatch, float]], accumulation: int
) -> Iterator[tuple[list[TTSBatch], list[float]]]:
    """The micro-batches of one pass over `loader` (collated batches with their padding
    shares) in groups of `accumulation`, one group per optimizer step. A short group left at
    the end is dropped: the next epoch starts afresh, as training always has."""
    group: list[TTSBatch] = []
    paddings: list[float] = []
    for batch, padding in loader:
        group.append(batch)
        paddings.append(padding)
        if len(group) == accumulation:
            yield group, paddings
            group, paddings = [], []
