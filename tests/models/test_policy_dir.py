"""The policy model directory: generated only into an empty folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from weighted_mtp.config import PolicyModelConfig, validate_block
from weighted_mtp.data import train_bpe_tokenizer
from weighted_mtp.models import create_micro_model
from weighted_mtp.models.policy_dir import load_or_create_policy, read_marker

TINY_MICRO = {"dim": 32, "n_layers": 5, "n_heads": 2, "n_kv_heads": 1, "n_future_tokens": 4,
              "max_seq_len": 64, "seed": 0}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_bpe_tokenizer(["def f(x):\n    return x + 1\n", "print(input())\n"] * 20, vocab_size=300)


def policy(path: Path, **micro: Any) -> PolicyModelConfig:
    return validate_block(PolicyModelConfig, {"name": "micro-mtp", "path": str(path), "create_micro": True,
                                              "micro": {**TINY_MICRO, **micro}}, "models.policy")


@pytest.mark.parametrize("layout", ["missing", "empty", "tokenizer only"])
def test_a_missing_or_empty_folder_gets_a_micro_model(tmp_path: Path, tokenizer: Any, layout: str) -> None:
    path = tmp_path / "micro-mtp"
    if layout != "missing":
        path.mkdir()
    if layout == "tokenizer only":  # a tokenizer put there for the micro model is its own
        tokenizer.save_pretrained(str(path / "tokenizer"))

    model = load_or_create_policy(policy(path), tokenizer)

    assert model.args.dim == 32 and (path / "metadata.json").is_file()
    assert read_marker(path)["generated_micro"] is True


def test_a_folder_with_other_files_is_never_generated_into(tmp_path: Path, tokenizer: Any) -> None:
    path = tmp_path / "my-checkpoint"
    (path / "original").mkdir(parents=True)
    (path / "original" / "consolidated.pth").write_bytes(b"weights")
    (path / "notes.txt").write_text("keep me")

    with pytest.raises(ValueError, match=rf"models.policy.path: '{re.escape(str(path))}' holds notes.txt, "
                                         r"original but no metadata.json.*empty the folder, point "
                                         r"models.policy.path elsewhere, or convert"):
        load_or_create_policy(policy(path), tokenizer)

    assert sorted(p.name for p in path.iterdir()) == ["notes.txt", "original"]
    assert (path / "original" / "consolidated.pth").read_bytes() == b"weights"
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: holds notes.txt, original"):
        create_micro_model(path, vocab_size=len(tokenizer), **TINY_MICRO)  # the library refuses too
