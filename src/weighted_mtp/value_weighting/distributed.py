"""Summing statistics over ranks.

Whitening statistics, EMA updates and explained variance are defined over the whole global
batch, so every rank must see the same numbers. Summing raw moments (count, Σx, Σx²) is the
one reduction that makes per-rank partial results exact, whatever the split.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return (
        dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    )


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` summed over all ranks (a copy; the input is not modified).

    Without an initialised multi-rank process group this is the identity, so single-process
    code pays nothing. With one, every rank must call it (it is a collective).

    Args:
        tensor: Tensor on a device the process group's backend supports (CUDA for NCCL).

    Returns:
        The element-wise sum over ranks, or ``tensor`` itself when not distributed.
    """
    if not is_distributed():
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced
