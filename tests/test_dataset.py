"""Training data: items read from features.zarr, padded batches, length buckets, sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.features.store import FeatureStore
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, collate


def test_batches_group_similar_lengths_and_cover_every_utterance_once() -> None:
    lengths = np.random.default_rng(0).integers(50, 900, size=500)
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=1)
    batches = sampler.batches(0)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean([np.ptp(lengths[np.random.default_rng(k).choice(500, 16)]) for k in range(30)])
    assert spread < random_spread / 10


def test_the_order_is_reproducible_per_epoch_and_differs_between_epochs() -> None:
    lengths = np.random.default_rng(0).integers(50, 900, size=200)
    a, b = BucketBatchSampler(lengths, 8, seed=3), BucketBatchSampler(lengths, 8, seed=3)
    assert a.batches(4) == b.batches(4)
    assert a.batches(4) != a.batches(5)


def test_ranks_get_disjoint_equal_shares_of_the_batches() -> None:
    lengths = np.random.default_rng(0).integers(50, 900, size=203)
    ranks = [BucketBatchSampler(lengths, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    b0, b1 = ranks[0].batches(0), ranks[1].batches(0)
    assert len(b0) == len(b1) == len(ranks[0])
    covered = {i for b in b0 + b1 for i in b}
    assert covered == set(range(203))


def test_collate_pads_and_reports_the_padding_share() -> None:
    items = [
        {
            "index": 0,
            "tokens": torch.tensor([3, 4]),
            "durations": torch.tensor([2, 2]),
            "mel": torch.ones(4, 3),
            "speaker": 0,
            "language": 0,
        },
        {
            "index": 1,
            "tokens": torch.tensor([5, 6, 7]),
            "durations": torch.tensor([2, 3, 3]),
            "mel": torch.ones(8, 3),
            "speaker": 1,
            "language": 0,
        },
    ]
    batch, padding = collate(items)
    assert batch.mels.shape == (2, 8, 3) and batch.tokens.shape == (2, 3)
    assert padding == pytest.approx(1 - 12 / 16)
    assert batch.frame_mask.sum().item() == 12 and batch.token_mask.sum().item() == 5
    assert torch.equal(batch.mels[0, 4:], torch.zeros(4, 3))


def test_items_are_normalized_with_the_training_statistics_and_carry_durations(tiny_store) -> None:
    fs = FeatureStore(tiny_store)
    ds = FeatureDataset(tiny_store, splits=[0])
    assert len(ds) == int((fs.array("split") == 0).sum())
    item = ds[0]
    i = item["index"]
    mean, std = np.asarray(fs.attrs["mel_mean"]), np.asarray(fs.attrs["mel_std"])
    np.testing.assert_allclose(item["mel"].numpy(), (fs.mel(i) - mean) / std, rtol=1e-5, atol=1e-5)
    assert int(item["durations"].sum()) == item["mel"].shape[0]
    assert np.array_equal(item["tokens"].numpy(), fs.tokens(i))
