"""Nodes of the data_processing pipeline: thin adapters over :mod:`weighted_mtp.data`.

Each takes the ``params:dataset`` block it uses (validated on its own), not the whole run
config, so any of them runs alone on persisted inputs (``kedro run --nodes build_records``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from weighted_mtp.config.validate import validate_dataset
from weighted_mtp.data import (
    load_tokenizer as load_saved_tokenizer,
    problems_to_records,
    split_by_problem,
    split_test_problems as split_test_problems_by_family,
    tokenizer_training_texts,
    train_bpe_tokenizer,
)

logger = logging.getLogger(__name__)


def split_test_problems(
    raw_problems: list[dict[str, Any]], dataset_params: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold out test problems (by family, seeded) before any record exists, so nothing of
    them can reach training, validation or checkpoint choice; evaluation reads them."""
    dataset = validate_dataset(dataset_params)
    raw = dataset.raw or "raw_problems"
    if not raw_problems:
        raise ValueError(f"{raw}: the raw problem file is empty; regenerate it (python -m wmtp_codegen, "
                         "docs/DATASET.md) or point paths.raw_problems (conf/base/globals.yml) at your problems")
    development, test = split_test_problems_by_family(raw_problems, dataset.test_fraction, dataset.split_seed)
    if not test:  # a family's only problem stays for training, so only 1-problem families give this
        raise ValueError(f"{dataset.test or 'test_problems'}: the test split is empty: none of the "
                         f"{len({p.get('family') for p in raw_problems})} families in {raw} has 2 or more "
                         "problems (a family's only problem stays for training); add problems to it")
    families = len({p.get("family") for p in test})
    logger.info("test split: %d of %d problems held out (%d families); %d left for train/validation",
                len(test), len(raw_problems), families, len(development))
    return development, test


def build_records(development_problems: list[dict[str, Any]], dataset_params: dict[str, Any]) -> list[dict[str, Any]]:
    """The problems left after the test split → Alpaca records (the primary layer),
    persisted before the train/validation split so the records a model saw can be inspected."""
    dataset = validate_dataset(dataset_params)
    records = problems_to_records(development_problems, dataset.max_solutions_per_problem, dataset.split_seed)
    logger.info("%d Alpaca records from %d problems", len(records), len(development_problems))
    return records


def build_datasets(
    alpaca_records: list[dict[str, Any]], dataset_params: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the Alpaca records into train and validation by problem (never by record)."""
    dataset = validate_dataset(dataset_params)
    train, validation = split_by_problem(alpaca_records, dataset.validation_fraction, dataset.split_seed)
    raw = dataset.raw or "raw_problems"
    if not train:
        raise ValueError(f"{dataset.train}: the training split is empty: the development problems gave no "
                         f"record (only non-empty Python 3 solutions are kept); check the solutions in {raw}")
    if not validation:  # a problem is never split, so one problem cannot feed both splits
        raise ValueError(f"{dataset.validation}: the validation split is empty: the {len(train)} records all "
                         f"come from 1 problem and a problem is never split between train and validation; "
                         f"{raw} needs 2 or more development problems with Python 3 solutions")
    for name, split in (("train", train), ("validation", validation)):
        n_correct = sum(r["is_correct"] for r in split)
        problems = len({r["problem_id"] for r in split})
        logger.info("%s: %d records from %d problems (%d correct, %d incorrect)",
                    name, len(split), problems, n_correct, len(split) - n_correct)
    return train, validation


def load_tokenizer(train_records: list[dict[str, Any]], dataset_params: dict[str, Any], model_path: str) -> Any:
    """Use the model's own tokenizer when it ships one; else train a BPE on the train split.

    The embedded micro model is created from this tokenizer (its vocabulary size), and keeps
    a copy in its directory, so later runs load that copy and the two never drift.
    """
    model_tokenizer = Path(model_path) / "tokenizer"
    if model_tokenizer.is_dir():
        logger.info("Loading the model's tokenizer from %s", model_tokenizer)
        return load_saved_tokenizer(model_tokenizer)
    texts = tokenizer_training_texts(train_records)
    vocab_size = validate_dataset(dataset_params).tokenizer_vocab_size
    logger.info("Training a byte-level BPE tokenizer (vocab %d) on %d records ...", vocab_size, len(texts))
    started = time.perf_counter()
    tokenizer = train_bpe_tokenizer(texts, vocab_size=vocab_size)
    logger.info("Tokenizer trained in %.1f s: %d tokens", time.perf_counter() - started, len(tokenizer))
    return tokenizer
