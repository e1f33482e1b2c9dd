"""Preallocated key/value buffers of one attention block, written in place (gpt-fast style).

Generation feeds one token (or a short block) per forward; without a cache every forward
would recompute the keys and values of the whole prefix. A ``KVCache`` holds them for one
block at fixed slots, so a forward costs the new tokens only. See docs/GENERATION.md.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of one block for ``batch`` rows and ``capacity`` slots.

    Rows are aligned by slot (left padding puts every row's newest token in the same
    slot); which slots a row may attend to is the attention mask's business, not the
    cache's. Rolling back (speculative decoding) needs no copy: the caller only moves its
    length pointer, and later writes overwrite the discarded slots.

    Attributes:
        k: Keys ``(B, KV, capacity, hd)`` after RoPE.
        v: Values ``(B, KV, capacity, hd)``.
    """

    def __init__(self, batch: int, n_kv_heads: int, capacity: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (batch, n_kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def capacity(self) -> int:
        """Number of slots per row."""
        return self.k.shape[2]

    def write(self, start: int, keys: torch.Tensor, values: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a block at slots ``[start, start + L)`` and return every slot up to its end.

        Args:
            start: First slot of the block.
            keys: ``(B, KV, L, hd)``.
            values: ``(B, KV, L, hd)``.

        Returns:
            Views ``(B, KV, start + L, hd)`` of the keys and values to attend over.
        """
        end = start + keys.shape[2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache overflow: writing slots [{start}, {end}) into a cache "
                               f"of {self.capacity} slots")
        self.k[:, :, start:end] = keys
        self.v[:, :, start:end] = values
        return self.k[:, :, :end], self.v[:, :, :end]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (finished rows stop costing work)."""
        self.k = self.k.index_select(0, rows)
        self.v = self.v.index_select(0, rows)
