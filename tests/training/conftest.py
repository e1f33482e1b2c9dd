"""Fixtures of the training-loop tests: tiny records, a tokenizer, a tiny model, configs.

Everything is small (dim 32, vocabulary ~360, rows of 48 tokens, 18 records) so a stage
runs in well under a second on one CPU core.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from weighted_mtp.config import RunConfig, validate_config
from weighted_mtp.data import tokenizer_training_texts, train_bpe_tokenizer
from weighted_mtp.models import MetaLlamaMTPAdapter, create_micro_model

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Tiny matrices: one intra-op thread is faster than two, and several times faster when
    the CPU is shared (thread hand-offs dominate a 32-wide matmul). Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


_OPS = [("add", "a + b"), ("sub", "a - b"), ("mul", "a * b"),
        ("max", "max(a, b)"), ("min", "min(a, b)"), ("pow", "a ** b")]


def _records(problems: list[tuple[str, str]], tag: str) -> list[dict[str, Any]]:
    """Three solutions per problem: two correct, one with swapped operands (incorrect)."""
    records = []
    for name, expr in problems:
        for j in range(3):
            correct = j != 2
            body = expr if correct else expr.replace("a", "b", 1)
            records.append({
                "instruction": f"Write {name}.", "input": "",
                "output": f"def f(a, b):\n    return {body}\n",
                "task_id": f"{tag}-{name}-{j}", "problem_id": f"{tag}-{name}",
                "is_correct": correct, "difficulty": 1,
            })
    return records


@pytest.fixture(scope="session")
def train_records() -> list[dict[str, Any]]:
    """18 records over 6 problems (12 correct, 6 incorrect)."""
    return _records(_OPS, "train")


@pytest.fixture(scope="session")
def val_records() -> list[dict[str, Any]]:
    """6 records over 2 problems not in the training split."""
    return _records([("neg", "-a + b"), ("mod", "a % b")], "val")


@pytest.fixture(scope="session")
def tokenizer(train_records, val_records):
    """Byte-level BPE trained on all the tiny text (saturates at ~360 tokens)."""
    return train_bpe_tokenizer(tokenizer_training_texts(train_records + val_records), vocab_size=400)


@pytest.fixture(scope="session")
def base_adapter(tmp_path_factory, tokenizer) -> MetaLlamaMTPAdapter:
    """A seeded tiny MTP model: 1 trunk block + 4 heads, dim 32."""
    model_dir = tmp_path_factory.mktemp("tiny_model")
    return create_micro_model(model_dir, vocab_size=len(tokenizer), seed=0, dim=32, n_layers=5,
                              n_heads=2, n_kv_heads=1, n_future_tokens=4, max_seq_len=64,
                              multiple_of=16)


@pytest.fixture
def make_adapter(base_adapter) -> Callable[[], MetaLlamaMTPAdapter]:
    """Fresh, identical copies of the tiny model (training mutates its input)."""
    return lambda: copy.deepcopy(base_adapter)


def _deep_update(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


TEST_OVERRIDES: dict[str, Any] = {
    "project": {"recipe": "verifiable", "experiment": "default"},  # the file's is ${globals:...}
    "dataset": {"max_length": 64},
    "training": {
        "seed": 0, "log_interval": 1, "eval_interval": 1000, "save_checkpoint_every": 1,
        "patience": 100,
        "pretrain": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 4},
        "stage1": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 4},
        "stage2": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 4, "max_grad_norm": 1.0},
    },
}


@pytest.fixture(scope="session")
def base_params() -> dict[str, Any]:
    """conf/base/parameters.yml (interpolations left as strings: paths are unused here)."""
    with open(PROJECT_ROOT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def make_config(base_params) -> Callable[..., RunConfig]:
    """``make_config({"training": {...}})`` → a validated RunConfig with test defaults."""

    def build(overrides: dict[str, Any] | None = None) -> RunConfig:
        params = _deep_update(copy.deepcopy(base_params), copy.deepcopy(TEST_OVERRIDES))
        return validate_config(_deep_update(params, copy.deepcopy(overrides or {})))

    return build

