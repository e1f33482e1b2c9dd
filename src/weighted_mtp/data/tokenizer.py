"""Tokenizers: load a model's own, or train a small byte-level BPE for the micro model.

A real checkpoint ships its tokenizer in ``<model_dir>/tokenizer/`` (docs/MODEL.md) and is loaded
with ``AutoTokenizer.from_pretrained``. The randomly initialised micro model has none, so one
is trained on the training text: byte-level BPE, because it never needs ``<unk>`` and
round-trips whitespace and indentation exactly, which matters for Python.

Everything here works offline: loading passes ``local_files_only=True``, training needs only
the ``tokenizers`` library.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from weighted_mtp.data.prompts import format_prompt

UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
# LLaMA's order for the first ids (<unk> 0, <s> 1, </s> 2), then <pad>.
SPECIAL_TOKENS = (UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)

# Sequences are truncated by encode_record's max_length, never by the tokenizer.
_NO_LENGTH_LIMIT = 1_000_000_000
# Files that mark a directory as a Hugging Face tokenizer folder.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE tokenizer and wraps it as a Hugging Face fast tokenizer.

    The byte-level pre-tokenizer and decoder make ``decode(encode(text)) == text`` for any
    UTF-8 text. No special tokens are inserted automatically: ``encode_record`` adds BOS and
    EOS itself so that prompt and response can be tokenised separately. Training on the same
    texts gives the same tokenizer.

    Args:
        texts: Training text, e.g. ``tokenizer_training_texts(train_records)``.
        vocab_size: Target vocabulary size, special tokens and the 256 byte symbols included;
            a small corpus may yield fewer tokens.
        min_frequency: Minimum pair count for a merge.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<unk>``=0, ``<s>``=1 (bos), ``</s>``=2 (eos),
        ``<pad>``=3; ``save_pretrained`` writes a folder ``load_tokenizer`` reads.

    Raises:
        ValueError: If ``vocab_size`` cannot hold the byte alphabet and special tokens.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    minimum = len(alphabet) + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be >= {minimum} (256 bytes + specials), got {vocab_size}"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=_NO_LENGTH_LIMIT,
        clean_up_tokenization_spaces=False,
    )


def tokenizer_training_texts(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text a tokenizer is trained on: each record's prompt followed by its response.

    Training on exactly what ``encode_record`` tokenises keeps the template's fixed phrases
    and common code idioms as single tokens.

    Args:
        records: Alpaca records (``instruction``, optional ``input``, ``output``).

    Returns:
        One string per record.
    """
    return [
        format_prompt(record["instruction"], record.get("input", "")) + record["output"]
        for record in records
    ]


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Loads a tokenizer from a model directory or a tokenizer directory, offline.

    Args:
        path: Either a model directory with a ``tokenizer/`` subfolder (docs/MODEL.md) or a
            tokenizer folder itself (one holding ``tokenizer.json``,
            ``tokenizer_config.json`` or ``tokenizer.model``).

    Returns:
        The tokenizer from ``AutoTokenizer.from_pretrained(..., local_files_only=True)``.

    Raises:
        FileNotFoundError: If neither layout is found at ``path``.
    """
    return AutoTokenizer.from_pretrained(str(resolve_tokenizer_dir(path)), local_files_only=True)


def resolve_tokenizer_dir(path: str | os.PathLike[str]) -> Path:
    """Finds the tokenizer folder for ``path`` (see ``load_tokenizer``)."""
    path = Path(path)
    for candidate in (path / "tokenizer", path):
        if candidate.is_dir() and any((candidate / name).is_file() for name in TOKENIZER_FILES):
            return candidate
    raise FileNotFoundError(
        f"no tokenizer at {path}: expected {path / 'tokenizer'}/ or {path}/ to contain one of "
        f"{', '.join(TOKENIZER_FILES)}; train one with train_bpe_tokenizer and save_pretrained"
    )


def resolve_pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id to pad batches with: ``pad_token_id``, else ``eos_token_id``.

    LLaMA tokenizers have no pad token. Padding with EOS is safe: padded positions carry
    label -100, so no loss reads them, and with right padding and causal attention they come
    after every real token, so no real position attends to them.

    Raises:
        ValueError: If the tokenizer has neither a pad nor an eos token.
    """
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad nor an eos token")
