"""Shared fixtures: a tiny seeded MTP model (fp32, CPU) and its saved directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

try:
    import weighted_mtp.models  # noqa: F401  (installed with pip install -e .)
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter  # noqa: E402
from weighted_mtp.models.args import ModelArgs  # noqa: E402
from weighted_mtp.models.transformer import init_weights  # noqa: E402

TINY = {"dim": 32, "n_layers": 5, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 61,
        "multiple_of": 16, "n_future_tokens": 3, "max_seq_len": 16}


@pytest.fixture
def tiny_args() -> ModelArgs:
    """5 blocks: ``layers`` = 2 trunk + head 0, ``extra_heads`` = 2; GQA 4 → 2."""
    return ModelArgs(**TINY)


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


@pytest.fixture
def tiny_model(tiny_args: ModelArgs) -> MetaLlamaMTPAdapter:
    return build_tiny(tiny_args)


@pytest.fixture
def tiny_ids(tiny_args: ModelArgs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, tiny_args.vocab_size, (2, 11), generator=generator)  # (B, S)
