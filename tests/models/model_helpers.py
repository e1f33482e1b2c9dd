"""A tiny seeded MTP model for the model tests (imported by name: `conftest` is ambiguous
when several test folders are collected together)."""

from __future__ import annotations

import torch

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.transformer import init_weights

TINY = {"dim": 32, "n_layers": 5, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 61,
        "multiple_of": 16, "n_future_tokens": 3, "max_seq_len": 16}


def build_tiny(args: ModelArgs, seed: int = 0, value_head: str = "linear"
               ) -> MetaLlamaMTPAdapter:
    """A seeded tiny adapter, weights doubled (std 0.04, norms 2) so the tests see
    non-trivial activations while gradients stay O(1)."""
    torch.manual_seed(seed)
    model = MetaLlamaMTPAdapter(args, value_head=value_head)
    generator = torch.Generator().manual_seed(seed)
    init_weights(model.transformer, n_path_blocks=args.n_layer_blocks, generator=generator)
    init_weights(model.value_head, n_path_blocks=1, generator=generator)
    with torch.no_grad():  # larger weights than training init: differences show up
        for param in model.parameters():
            param.mul_(2.0)
    return model
