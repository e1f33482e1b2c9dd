"""What ``kedro wmtp generate`` does besides parsing options: read the instructions, load
the model and its tokenizer, format the completions (docs/GENERATION.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from weighted_mtp.data.jsonl import read_jsonl
from weighted_mtp.data.tokenizer import load_tokenizer
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter

# Where `kedro run` leaves the micro model's tokenizer (its model directory has none).
PIPELINE_TOKENIZER = Path("data/05_model_input/tokenizer")


def read_instructions(prompts: Sequence[str], prompts_file: Path | None) -> list[Any]:
    """The ``--prompt`` values, then the file's: JSONL records (``instruction``, optional
    ``input``) for ``*.jsonl``, else one instruction per non-empty line.

    Raises:
        ValueError: No instruction given at all.
    """
    instructions: list[Any] = list(prompts)
    if prompts_file is not None:
        if prompts_file.suffix == ".jsonl":
            instructions.extend(read_jsonl(prompts_file))
        else:
            lines = prompts_file.read_text(encoding="utf-8").splitlines()
            instructions.extend(line for line in lines if line.strip())
    if not instructions:
        raise ValueError("no instruction to complete: pass --prompt TEXT or --prompts-file FILE")
    return instructions


def load_for_generation(model_dir: Path, tokenizer_dir: Path | None, device: str,
                        dtype: str | None) -> tuple[MetaLlamaMTPAdapter, PreTrainedTokenizerBase]:
    """The model and its tokenizer: ``tokenizer_dir``, else ``<model_dir>/tokenizer``.

    Raises:
        FileNotFoundError: No tokenizer found; the message says where to point ``--tokenizer``.
    """
    model = MetaLlamaMTPAdapter.from_pretrained(model_dir, device=device, dtype=dtype)
    try:
        tokenizer = load_tokenizer(tokenizer_dir or model_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. A model made by `kedro run` keeps its tokenizer "
                                f"apart: pass --tokenizer {PIPELINE_TOKENIZER}") from error
    if len(tokenizer) > model.args.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                         f"is {model.args.vocab_size}: they do not belong together")
    return model, tokenizer


def format_completions(instructions: Sequence[Any], completions: Sequence[str],
                       jsonl: bool) -> str:
    """One JSON object per line, or the completions separated by numbered headers
    (a single completion is printed bare)."""
    if jsonl:
        return "\n".join(json.dumps({"instruction": _text(item), "completion": completion})
                         for item, completion in zip(instructions, completions))
    if len(completions) == 1:
        return completions[0]
    return "\n".join(f"### completion {index}\n{completion}"
                     for index, completion in enumerate(completions))


def _text(item: Any) -> str:
    return item if isinstance(item, str) else str(item.get("instruction", ""))
