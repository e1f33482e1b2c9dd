"""Shared test setup: no telemetry, no network, MLflow in a throw-away store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Kedro sessions create an MLflow client at start-up: keep it away from the project's store.
_MLFLOW_DIR = tempfile.mkdtemp(prefix="wmtp-tests-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def train_sentencepiece(folder: Path, **settings: object) -> Path:
    """A small SentencePiece BPE model trained on code-like lines; LLaMA's settings (byte
    fallback, identity normalisation, whitespace kept, split digits) unless overridden."""
    import random

    import sentencepiece

    rng = random.Random(0)
    words = ("def return for in range print if else while import class self value token "
             "model head ( ) : = + , [ ] 0 1 42 3.5 'text' # é").split()
    lines = [" " * rng.choice([0, 4, 8]) + " ".join(rng.choice(words) for _ in range(10))
             for _ in range(400)]
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    options = {"model_type": "bpe", "vocab_size": 320, "byte_fallback": True,
               "normalization_rule_name": "identity", "remove_extra_whitespaces": False,
               "split_digits": True, "allow_whitespace_only_pieces": True,
               "character_coverage": 1.0, "minloglevel": 2, "num_threads": 1, **settings}
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"),
                                             **options)
    return folder / "tokenizer.model"


@pytest.fixture(scope="session")
def llama_sentencepiece(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tokenizer.model`` with LLaMA's SentencePiece settings (320 pieces)."""
    return train_sentencepiece(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def sentencepiece_trainer() -> object:
    """:func:`train_sentencepiece`, for tests that need other settings."""
    return train_sentencepiece
