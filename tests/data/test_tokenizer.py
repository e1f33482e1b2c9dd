"""Byte-level BPE training, saving and offline loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from weighted_mtp.data import (
    load_tokenizer,
    resolve_pad_token_id,
    tokenizer_training_texts,
    train_bpe_tokenizer,
)

CODE = (
    "import sys\n\n"
    "def solve(n: int) -> int:\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "\tif i % 2 == 0:  # tab-indented on purpose\n"
    "            total += i\n"
    "    return total   \n\n"
    "print(solve(int(sys.stdin.readline())), 'héllo ✓ 日本 🐍')\n"
)

CORPUS = [
    CODE,
    "for line in sys.stdin:\n    a, b = map(int, line.split())\n    print(a + b)\n",
    "n = int(input())\nprint(sum(range(n)))\n",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(CORPUS, vocab_size=400)


def test_decode_encode_round_trips_code_exactly(tokenizer) -> None:
    for text in [CODE, "  leading spaces\n\n\n  and trailing  ", "unseen: ß∑ \x00 \r\n{}"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert tokenizer.unk_token_id not in ids  # byte-level: nothing is unknown


def test_special_tokens_are_distinct_and_not_added_automatically(tokenizer) -> None:
    special = [
        tokenizer.unk_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    ]
    assert special == [0, 1, 2, 3]
    assert tokenizer.convert_ids_to_tokens(special) == ["<unk>", "<s>", "</s>", "<pad>"]
    ids = tokenizer("print(1)")["input_ids"]  # even with the default add_special_tokens=True
    assert not set(special) & set(ids)
    assert resolve_pad_token_id(tokenizer) == 3


def test_training_learns_merges_and_respects_vocab_size(tokenizer) -> None:
    assert 256 + 4 < len(tokenizer) <= 400
    assert len(tokenizer(CODE, add_special_tokens=False)["input_ids"]) < len(CODE) / 2


def test_training_is_deterministic(tokenizer, tmp_path: Path) -> None:
    train_bpe_tokenizer(CORPUS, vocab_size=400).save_pretrained(str(tmp_path / "a"))
    tokenizer.save_pretrained(str(tmp_path / "b"))

    first = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    second = json.loads((tmp_path / "b" / "tokenizer.json").read_text())
    assert first["model"] == second["model"]


def test_saved_folder_loads_offline_with_auto_tokenizer(tokenizer, tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    tokenizer.save_pretrained(str(folder))

    loaded = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    assert loaded(CODE, add_special_tokens=False)["input_ids"] == tokenizer(
        CODE, add_special_tokens=False
    )["input_ids"]
    assert loaded.decode(loaded(CODE, add_special_tokens=False)["input_ids"]) == CODE
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (1, 2, 3)
    assert loaded.model_max_length >= 1_000_000


def test_load_tokenizer_accepts_model_dir_or_tokenizer_dir(tokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(str(tmp_path / "model" / "tokenizer"))

    from_model = load_tokenizer(tmp_path / "model")
    from_folder = load_tokenizer(tmp_path / "model" / "tokenizer")

    assert from_model.get_vocab() == from_folder.get_vocab() == tokenizer.get_vocab()


def test_load_tokenizer_missing_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tokenizer at .*model.*tokenizer\.json"):
        load_tokenizer(tmp_path / "model")


def test_pad_falls_back_to_eos_for_llama_style_tokenizers(tokenizer) -> None:
    class NoPad:
        pad_token_id = None
        eos_token_id = 2

    class Neither:
        pad_token_id = None
        eos_token_id = None

    assert resolve_pad_token_id(NoPad()) == 2
    with pytest.raises(ValueError, match="neither a pad nor an eos"):
        resolve_pad_token_id(Neither())


def test_vocab_size_below_byte_alphabet_is_rejected() -> None:
    with pytest.raises(ValueError, match="vocab_size must be >= 260"):
        train_bpe_tokenizer(CORPUS, vocab_size=100)


def test_training_texts_are_prompt_plus_response() -> None:
    record = {"instruction": "Add.", "input": "", "output": "print(1)\n"}

    (text,) = tokenizer_training_texts([record])

    assert text.startswith("Below is an instruction") and text.endswith(
        "### Instruction:\nAdd.\n\n### Response:\nprint(1)\n"
    )
