"""A seeded, rank-sharded, resumable sampler.

The order of epoch ``e`` is a permutation drawn from ``torch.Generator().manual_seed(seed + e)``,
independent of the global RNG, so a run that resumes mid-epoch regenerates the same order
and skips what it already consumed. The interface matches
``torch.utils.data.DistributedSampler`` (``rank``, ``world_size``/``num_replicas``,
``set_epoch``), so the same sampler serves torchrun runs: the training loop calls
``set_epoch`` at every epoch, and every rank draws the same permutation and takes its
strided shard of it.

Training pads the permutation (as ``DistributedSampler`` does) so every rank runs the same
number of steps; validation does not (``pad=False``): each row is evaluated exactly once,
and the shards differ by at most one row (:func:`~weighted_mtp.training.evaluate.evaluate_stage`
evens out the number of batches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Indices of one rank's shard of a seeded per-epoch permutation.

    Like ``DistributedSampler`` with ``drop_last=False``, the permutation is padded by
    repeating its head so every rank gets ``ceil(n / world_size)`` indices; with
    ``pad=False`` rank r gets rows r, r + W, r + 2W, … of the order and nothing repeats.

    Args:
        dataset_size: Number of samples.
        seed: Base seed; epoch ``e`` uses ``seed + e``.
        shuffle: False gives ``0..n-1`` every epoch (validation).
        rank: This process's rank.
        world_size: Number of ranks.
        pad: Repeat rows so every rank gets the same count (training); False for
            validation, where a repeated row would count twice.
    """

    def __init__(
        self,
        dataset_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if dataset_size < 1:
            raise ValueError(f"ResumableSampler: the dataset is empty (dataset_size={dataset_size}).")
        if not 0 <= rank < world_size:
            raise ValueError(f"ResumableSampler: rank {rank} outside [0, {world_size}).")
        self.dataset_size = dataset_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self.start_index = 0
        if pad:
            self.num_samples = math.ceil(dataset_size / world_size)
        else:
            self.num_samples = len(range(rank, dataset_size, world_size))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation; resets any skip set by :meth:`skip_batches`."""
        self.epoch = epoch
        self.start_index = 0

    def skip_batches(self, n_batches: int, batch_size: int) -> None:
        """Start the current epoch after its first ``n_batches`` batches (resume).

        Call after :meth:`set_epoch`. With a ``DataLoader(batch_size=batch_size)`` the
        remaining batches are exactly those an uninterrupted run would have seen.
        """
        self.start_index = min(n_batches * batch_size, self.num_samples)

    def epoch_indices(self) -> list[int]:
        """All of this rank's indices for the current epoch (ignoring the skip)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.dataset_size, generator=generator).tolist()
        else:
            order = list(range(self.dataset_size))
        if not self.pad:
            return order[self.rank :: self.world_size]
        total = self.num_samples * self.world_size
        while len(order) < total:  # pad by repeating, as DistributedSampler does
            order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index
