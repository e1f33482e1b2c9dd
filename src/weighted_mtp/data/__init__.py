"""Data layer: raw problems → Alpaca records → splits → tokenised, collated batches.

Kedro-free: the catalog datasets in ``weighted_mtp.datasets`` and the pipeline nodes call
these functions. See docs/internal/CONTRACTS.md.
"""

from weighted_mtp.data.collate import (
    IGNORE_INDEX,
    MTPCollator,
    TokenizedDataset,
    encode_prompts,
    encode_record,
    encode_records,
    has_labels,
)
from weighted_mtp.data.jsonl import read_jsonl, write_jsonl
from weighted_mtp.data.prompts import PROMPT_NO_INPUT, PROMPT_WITH_INPUT, format_prompt
from weighted_mtp.data.records import (
    PYTHON2,
    PYTHON3,
    build_instruction,
    check_alpaca_record,
    problems_to_records,
)
from weighted_mtp.data.split import split_by_problem, split_test_problems
from weighted_mtp.data.tokenizer import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    UNK_TOKEN,
    load_tokenizer,
    resolve_pad_token_id,
    resolve_tokenizer_dir,
    tokenizer_training_texts,
    train_bpe_tokenizer,
)

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "IGNORE_INDEX",
    "PAD_TOKEN",
    "PROMPT_NO_INPUT",
    "PROMPT_WITH_INPUT",
    "PYTHON2",
    "PYTHON3",
    "UNK_TOKEN",
    "MTPCollator",
    "TokenizedDataset",
    "build_instruction",
    "check_alpaca_record",
    "encode_prompts",
    "encode_record",
    "encode_records",
    "format_prompt",
    "has_labels",
    "load_tokenizer",
    "problems_to_records",
    "read_jsonl",
    "resolve_pad_token_id",
    "resolve_tokenizer_dir",
    "split_by_problem",
    "split_test_problems",
    "tokenizer_training_texts",
    "train_bpe_tokenizer",
    "write_jsonl",
]
