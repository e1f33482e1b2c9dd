"""The seeded, resumable, rank-aware sampler."""

from __future__ import annotations

import pytest

from weighted_mtp.training.sampler import ResumableSampler


def test_order_is_a_seeded_permutation_per_epoch():
    sampler = ResumableSampler(10, seed=5)
    first = list(sampler)
    assert sorted(first) == list(range(10))
    assert list(ResumableSampler(10, seed=5)) == first  # same seed, same order
    sampler.set_epoch(1)
    assert list(sampler) != first  # a new order each epoch
    sampler.set_epoch(0)
    assert list(sampler) == first  # ... reproducible on demand


def test_skip_batches_resumes_mid_epoch():
    sampler = ResumableSampler(10, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip_batches(2, batch_size=3)
    assert list(sampler) == full[6:] and len(sampler) == 4
    sampler.set_epoch(3)  # a new epoch starts from its beginning
    assert len(sampler) == 10


def test_ranks_shard_the_same_permutation():
    shards = [list(ResumableSampler(10, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert all(len(shard) == 4 for shard in shards)  # padded to ceil(10 / 3)
    assert set().union(*shards) == set(range(10))
    unsharded = ResumableSampler(10, seed=1).epoch_indices()
    assert shards[0][:3] == unsharded[0:9:3]


def test_sequential_order_without_shuffle_and_errors():
    assert list(ResumableSampler(4, shuffle=False)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="empty"):
        ResumableSampler(0)
    with pytest.raises(ValueError, match="rank 2"):
        ResumableSampler(4, rank=2, world_size=2)
