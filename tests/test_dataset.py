"""Training data: items read from features.zarr, padded batches, length buckets, sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.features.store import FeatureStore
from pipeline.training.dataset import BucketBatchSampler, FeatureDataset, collate, speaker_draw_weights


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


# One big speaker (900 utterances) and one small one (100): the mix a LJSpeech + VCTK corpus has.
SPEAKERS = np.array([0] * 900 + [1] * 100)


def speaker_shares(balance: float, epochs: int = 20) -> float:
    """The small speaker's share of the utterances drawn over `epochs` epochs."""
    lengths = np.random.default_rng(0).integers(50, 900, size=len(SPEAKERS))
    sampler = BucketBatchSampler(lengths, 16, seed=5, speakers=SPEAKERS, speaker_balance=balance)
    drawn = np.concatenate([np.concatenate(sampler.batches(e)) for e in range(epochs)])
    return float((SPEAKERS[drawn] == 1).mean())


@pytest.mark.parametrize(
    ("balance", "small_share"),
    [(0.0, 0.1), (1.0, 0.5), (0.5, 10 / (10 + 30))],  # 0.5: shares as sqrt(100) : sqrt(900)
)
def test_speaker_balance_gives_each_speaker_its_tempered_share(balance: float, small_share: float) -> None:
    assert speaker_shares(balance) == pytest.approx(small_share, abs=0.015)


def test_speaker_draw_weights_sum_to_one_and_are_equal_within_a_speaker() -> None:
    w = speaker_draw_weights(SPEAKERS, 1.0)
    assert w.sum() == pytest.approx(1.0)
    assert np.ptp(w[:900]) == 0 and np.ptp(w[900:]) == 0
    assert w[900:].sum() == pytest.approx(0.5)


def test_a_balanced_epoch_keeps_its_size_and_length_buckets_and_is_reproducible() -> None:
    lengths = np.random.default_rng(0).integers(50, 900, size=len(SPEAKERS))
    a = BucketBatchSampler(lengths, 16, seed=5, speakers=SPEAKERS, speaker_balance=1.0)
    b = BucketBatchSampler(lengths, 16, seed=5, speakers=SPEAKERS, speaker_balance=1.0)
    batches = a.batches(3)
    assert batches == b.batches(3) and batches != a.batches(4)
    assert sum(len(x) for x in batches) == len(SPEAKERS) and len(batches) == len(a)
    assert np.mean([np.ptp(lengths[x]) for x in batches]) < 20


def test_balance_zero_is_the_plain_sampler_exactly() -> None:
    lengths = np.random.default_rng(0).integers(50, 900, size=len(SPEAKERS))
    plain = BucketBatchSampler(lengths, 16, seed=5).batches(2)
    assert BucketBatchSampler(lengths, 16, seed=5, speakers=SPEAKERS, speaker_balance=0.0).batches(2) == plain


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


def test_training_reads_train_speaker_balance_into_its_sampler(tiny_store) -> None:
    import dataclasses

    from helpers import committed_params
    from pipeline.config import train_config
    from pipeline.training.distributed import DistContext
    from pipeline.training.loop import training_data

    cfg = dataclasses.replace(train_config(committed_params()), speaker_balance=1.0, batch_size=4)
    train_set, sampler, _ = training_data(tiny_store, cfg, torch.device("cpu"), DistContext())
    assert sampler.weights is not None and len(sampler.weights) == len(train_set)
    plain = dataclasses.replace(cfg, speaker_balance=0.0)
    assert training_data(tiny_store, plain, torch.device("cpu"), DistContext())[1].weights is None
