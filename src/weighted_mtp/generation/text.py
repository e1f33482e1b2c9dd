"""``generate_text``: instructions in, response texts out, with the training prompt.

A trained model continues ``[BOS] prompt`` (the Alpaca template of docs/DATASET.md) and
ends its response with EOS, so generation builds exactly that prefix (``encode_prompts``,
shared with training's tokenisation) and stops at EOS (docs/GENERATION.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from weighted_mtp.data.collate import encode_prompts
from weighted_mtp.generation.api import generate

Instruction = str | Mapping[str, Any]


def generate_text(model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                  instructions: Sequence[Instruction], max_new_tokens: int = 256,
                  stop_ids: Iterable[int] = (), **options: Any) -> list[str]:
    """Complete each instruction as training formatted it; return the response texts.

    Args:
        model: The loaded ``MetaLlamaMTPAdapter``.
        tokenizer: The model's tokenizer (BOS and EOS needed).
        instructions: Instruction strings, or records with ``instruction`` and optional
            ``input`` (the Alpaca fields).
        max_new_tokens: Limit of response tokens.
        stop_ids: Ids ending a response besides EOS.
        **options: Passed to ``generate`` (temperature, top_p, top_k, speculative, seed,
            batch_size, progress, stats).

    Returns:
        One response per instruction, without the EOS that ended it.

    Raises:
        ValueError: An instruction is neither a string nor a record with ``instruction``.
    """
    pairs = [_pair(index, item) for index, item in enumerate(instructions)]
    prompts = encode_prompts(pairs, tokenizer)
    eos = int(tokenizer.eos_token_id)
    stops = {eos, *(int(token) for token in stop_ids)}
    outputs = generate(model, prompts, max_new_tokens=max_new_tokens, stop_ids=stops, **options)
    return [tokenizer.decode(_until_stop(ids, stops), skip_special_tokens=True)
            for ids in outputs]


def _pair(index: int, item: Instruction) -> tuple[str, str]:
    if isinstance(item, str):
        return item, ""
    if isinstance(item, Mapping) and isinstance(item.get("instruction"), str):
        return item["instruction"], str(item.get("input", "") or "")
    raise ValueError(f"instructions[{index}] must be a string or a record with an "
                     f"'instruction' string, got {type(item).__name__}")


def _until_stop(ids: list[int], stops: set[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] in stops else ids
