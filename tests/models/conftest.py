"""Shared fixtures: a tiny seeded MTP model (fp32, CPU) and its saved directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_helpers import TINY, build_tiny
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs


@pytest.fixture
def tiny_args() -> ModelArgs:
    """5 blocks: ``layers`` = 2 trunk + head 0, ``extra_heads`` = 2; GQA 4 → 2."""
    return ModelArgs(**TINY)


@pytest.fixture
def tiny_model(tiny_args: ModelArgs) -> MetaLlamaMTPAdapter:
    return build_tiny(tiny_args)


@pytest.fixture
def tiny_ids(tiny_args: ModelArgs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, tiny_args.vocab_size, (2, 11), generator=generator)  # (B, S)
