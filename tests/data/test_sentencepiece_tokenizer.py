"""Meta's tokenizer.model (SentencePiece) → Hugging Face tokenizer: same ids, same text."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import sentencepiece
from transformers import AutoTokenizer

from weighted_mtp.data import load_tokenizer
from weighted_mtp.data.sentencepiece_tokenizer import PROBE_TEXTS, convert_sentencepiece

CODE = [
    "def solve():\n    n = int(input())\n    print(sum(range(n + 1)))\n",
    "class Head(self):\n\tvalue = [0, 1, 42]  # é\n\n\n    return  'text'",
    "   x=3.5e10;y = x ** 2 \n",
]


def test_converted_tokenizer_encodes_and_decodes_like_sentencepiece(
        llama_sentencepiece: Path, tmp_path: Path) -> None:
    out = tmp_path / "tokenizer"
    convert_sentencepiece(llama_sentencepiece, out)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(llama_sentencepiece))
    for tokenizer in (AutoTokenizer.from_pretrained(str(out), local_files_only=True),
                      load_tokenizer(out)):
        assert len(tokenizer) == processor.get_piece_size() == 320
        assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
        for text in CODE + list(PROBE_TEXTS):
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert ids == processor.encode(text), text
            assert tokenizer.decode(ids) == processor.decode(ids) == text
        assert tokenizer("x = 1").input_ids == [1] + processor.encode("x = 1")  # BOS, as LLaMA's


def test_a_model_with_other_normalisation_is_refused(
        sentencepiece_trainer: Callable[..., Path], tmp_path: Path) -> None:
    model = sentencepiece_trainer(tmp_path / "nfkc", normalization_rule_name="nmt_nfkc",
                                  remove_extra_whitespaces=True)
    with pytest.raises(ValueError, match=r"nfkc/tokenizer.model: the converted tokenizer encodes "
                                         r"'def add.* but SentencePiece as .*only LLaMA-style"):
        convert_sentencepiece(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-checked is left behind


def test_missing_or_foreign_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer model .*none.model not found"):
        convert_sentencepiece(tmp_path / "none.model", tmp_path / "out")
    tiktoken_like = tmp_path / "tokenizer.model"
    tiktoken_like.write_text("IQ== 0\nIg== 1\n")  # Llama 3 ships a tiktoken file by that name
    with pytest.raises(ValueError, match=r"tokenizer.model: not a SentencePiece model .*tiktoken"):
        convert_sentencepiece(tiktoken_like, tmp_path / "out")
