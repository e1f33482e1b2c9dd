"""Cached forwards of the MTP model's parts: trunk, one head block, the shared projection.

Split like ``MTPTransformer.trunk`` / ``head_logits`` so decoding can run the trunk once,
head 0 on every new token, and the drafting heads only where they are needed
(docs/GENERATION.md). The training forward is untouched: these functions use each block's
``forward_cached``.
"""

from __future__ import annotations

import torch

from weighted_mtp.generation.state import BlockInputs, DecodeState
from weighted_mtp.models.transformer import MTPTransformer


def trunk(transformer: MTPTransformer, tokens: torch.Tensor, state: DecodeState,
          block: BlockInputs) -> torch.Tensor:
    """Embeddings and ``layers[:-1]`` on new tokens ``(B, L)`` → z ``(B, L, D)``."""
    h = transformer.tok_embeddings(tokens)
    for layer, cache in zip(transformer.layers[:-1], state.trunk):
        h = layer.forward_cached(h, block.freqs, cache, block.start, block.mask)
    return h


def head(transformer: MTPTransformer, z: torch.Tensor, head_index: int, state: DecodeState,
         block: BlockInputs) -> torch.Tensor:
    """Head ``head_index``'s block on z ``(B, L, D)`` → hidden ``(B, L, D)``; its own cache."""
    return transformer.head_block(head_index).forward_cached(
        z, block.freqs, state.heads[head_index], block.start, block.mask)


def project(transformer: MTPTransformer, hidden: torch.Tensor) -> torch.Tensor:
    """Shared norm and output: ``(B, L, D)`` → fp32 logits ``(B, L, V)``."""
    return transformer.output(transformer.norm(hidden)).float()
