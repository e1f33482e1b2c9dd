"""Summing statistics over ranks.

Whitening statistics, EMA updates and explained variance are defined over the whole global
batch, so every rank must see the same numbers. Summing raw moments (count, Σx, Σx²) is the
one reduction that makes per-rank partial results exact, whatever the split.

The collective itself lives in :mod:`weighted_mtp.runtime.distributed` (one implementation
for the whole project); it is re-exported here for the statistics code.
"""

from __future__ import annotations

from weighted_mtp.runtime.distributed import all_reduce_sum, is_distributed

__all__ = ["all_reduce_sum", "is_distributed"]
