"""A randomly initialised micro MTP model for laptops, CI and tests.

Same architecture and directory layout as Meta's 7B_1T_4, shrunk: 6 blocks of width 128
(2 trunk blocks, head 0 = ``layers[-1]``, 3 extra heads), 4 query / 2 key-value heads.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter, init_value_head
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.transformer import init_weights

logger = logging.getLogger(__name__)

MICRO_MODEL_NAME = "micro-mtp"
MICRO_DEFAULTS: dict[str, Any] = {
    "dim": 128,
    "n_layers": 6,
    "n_heads": 4,
    "n_kv_heads": 2,
    "n_future_tokens": 4,
    "max_seq_len": 512,
    "multiple_of": 32,
}


def micro_args(vocab_size: int, **overrides: Any) -> ModelArgs:
    """The micro ``ModelArgs`` with ``overrides`` applied.

    Raises:
        ValueError: An override that is not a ``ModelArgs`` field, or invalid values.
    """
    known = {f.name for f in fields(ModelArgs)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown micro model settings {unknown}; expected ModelArgs fields "
                         f"{sorted(known)}")
    return ModelArgs(**{**MICRO_DEFAULTS, **overrides, "vocab_size": vocab_size})


def entries_in_the_way(model_dir: str | Path) -> list[str]:
    """What generating a micro model at ``model_dir`` would replace: every entry but ``tokenizer/``.

    The model directory is written by swapping a complete new folder in for the old one, so
    anything else in the old folder would be deleted.

    Raises:
        ValueError: ``model_dir`` is a file.
    """
    path = Path(model_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file, not a folder; a model directory cannot be written there")
    if not path.is_dir():
        return []
    return sorted(entry.name for entry in path.iterdir() if entry.name != "tokenizer")


def create_micro_model(model_dir: str | Path, vocab_size: int, seed: int = 0,
                       value_head: str = "linear", **overrides: Any) -> MetaLlamaMTPAdapter:
    """Randomly initialise a micro model (deterministic for a seed) and save it.

    Weights are N(0, 0.02) with residual outputs scaled (``init_weights``), so the first
    loss of every head is close to log(V).

    Args:
        model_dir: Directory written in the standard layout: missing, empty, or holding
            only a ``tokenizer/`` (which is kept).
        vocab_size: Tokenizer vocabulary size.
        seed: Seed of the initialisation.
        value_head: ``"linear"`` or ``"mlp"``.
        **overrides: ``ModelArgs`` fields replacing ``MICRO_DEFAULTS``.

    Returns:
        The model, fp32 on the CPU, in train mode.

    Raises:
        ValueError: ``model_dir`` holds anything but a ``tokenizer/`` (a model included):
            nothing is overwritten.
    """
    in_the_way = entries_in_the_way(model_dir)
    if in_the_way:
        raise ValueError(f"{model_dir}: holds {', '.join(in_the_way)}, which generating a micro model "
                         "there would delete; empty the folder or choose another one")
    args = micro_args(vocab_size, **overrides)
    with torch.device("meta"):
        adapter = MetaLlamaMTPAdapter(args, value_head=value_head)
    adapter.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    init_weights(adapter.transformer, n_path_blocks=args.n_layer_blocks, generator=generator)
    init_value_head(adapter, generator=generator)
    adapter.model_name = MICRO_MODEL_NAME
    adapter.save_pretrained(model_dir)
    n_params = sum(p.numel() for p in adapter.parameters())
    logger.info("created micro model at %s: %d parameters (%d blocks = %d trunk + %d heads, "
                "dim %d, vocab %d, seed %d)", model_dir, n_params, args.n_layers,
                args.n_layer_blocks - 1, args.n_future_tokens, args.dim, vocab_size, seed)
    return adapter
