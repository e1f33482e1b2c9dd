"""The decoding state of a batch: every block's KV cache, which slots hold real tokens,
each row's next position, and how many slots are in use.

Rows share slots: a left-padded batch puts every row's newest token in the same slot, so
one ``start`` serves all rows and the caches stay dense tensors. Each row keeps its own
RoPE position (the number of its real tokens so far), so a padded row computes exactly
what it would alone. See docs/GENERATION.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weighted_mtp.models.kv_cache import KVCache
from weighted_mtp.models.transformer import MTPTransformer


@dataclass(frozen=True)
class BlockInputs:
    """What every block needs to process L new tokens at slots ``[start, start + L)``.

    Attributes:
        start: Slot of the first new token.
        freqs: Per-row RoPE table at the new tokens' positions ``(B, L, hd/2, 2)``.
        mask: Boolean attention mask ``(B, 1, L, start + L)``.
    """

    start: int
    freqs: torch.Tensor
    mask: torch.Tensor

    def first(self, length: int) -> "BlockInputs":
        """The inputs of the block's first ``length`` tokens only."""
        end = self.start + length
        return BlockInputs(self.start, self.freqs[:, :length], self.mask[:, :, :length, :end])


class DecodeState:
    """KV caches of the trunk blocks and of the head blocks decoding uses.

    Args:
        transformer: The model (its RoPE table, shapes, dtype and device are used).
        batch: Rows.
        capacity: Slots per row: longest padded prompt + new tokens (+ a speculative block).
        n_heads: Head blocks to cache: 1 (head 0) for plain decoding, n for speculative
            decoding, where the extra heads draft from their own attention over z.
    """

    def __init__(self, transformer: MTPTransformer, batch: int, capacity: int,
                 n_heads: int) -> None:
        args = transformer.args
        weight = transformer.tok_embeddings.weight
        device, dtype = weight.device, weight.dtype

        def cache() -> KVCache:
            return KVCache(batch, args.kv_heads, capacity, args.head_dim, dtype, device)

        self.rope = transformer.freqs_cis  # (2 * max_seq_len, hd/2, 2), fp32
        self.trunk = [cache() for _ in range(args.n_layer_blocks - 1)]
        self.heads = [cache() for _ in range(n_heads)]
        self.key_valid = torch.zeros(batch, capacity, dtype=torch.bool, device=device)
        self.positions = torch.zeros(batch, dtype=torch.long, device=device)
        self.length = 0
        self.capacity = capacity

    def prepare(self, real: torch.Tensor) -> BlockInputs:
        """Positions and mask for a block of new tokens appended at slot ``self.length``.

        Nothing is committed: ``commit`` decides afterwards how many slots to keep.

        Args:
            real: ``(B, L)`` bool, True on real tokens, False on left padding.
        """
        start, length = self.length, real.shape[1]
        end = start + length
        if end > self.capacity:
            raise RuntimeError(f"decoding needs slot {end} but the cache holds {self.capacity}")
        self.key_valid[:, start:end] = real
        # A row's RoPE position is its count of real tokens: padding does not shift it.
        positions = self.positions[:, None] + real.long().cumsum(1) - 1  # (B, L)
        freqs = self.rope[positions.clamp(min=0)]  # (B, L, hd/2, 2)
        slots = torch.arange(end, device=real.device)
        query_slots = slots[start:, None]  # (L, 1)
        causal = slots[None, :] <= query_slots  # (L, T)
        mask = self.key_valid[:, None, :end] & causal[None]  # (B, L, T)
        # A padding query sees no real key; letting it see itself keeps its softmax finite
        # (an all-masked row would be NaN, and NaN keys poison even masked-out products).
        mask = mask | (slots[None, :] == query_slots)[None]
        return BlockInputs(start, freqs, mask[:, None])  # mask (B, 1, L, T)

    def commit(self, kept: torch.Tensor) -> None:
        """Keep the first ``kept.shape[1]`` slots of the prepared block.

        Args:
            kept: ``(B, K)`` bool, the real tokens among the kept slots.
        """
        self.length += kept.shape[1]
        self.positions = self.positions + kept.long().sum(1)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop every row not in ``rows`` (indices into the current batch)."""
        for cache in (*self.trunk, *self.heads):
            cache.keep_rows(rows)
        self.key_valid = self.key_valid.index_select(0, rows)
        self.positions = self.positions.index_select(0, rows)
