"""``generate_text`` and ``kedro wmtp generate``: the training prompt in, the response out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from generation_helpers import build_model, train_mtp

from weighted_mtp.cli import cli
from weighted_mtp.data import encode_prompts, encode_record, tokenizer_training_texts, train_bpe_tokenizer
from weighted_mtp.generation import generate_text

RECORDS = [
    {"instruction": "Print the sum of two integers read from stdin.", "input": "",
     "output": "a, b = map(int, input().split())\nprint(a + b)\n"},
    {"instruction": "Reverse a line.", "input": "abc",
     "output": "print(input()[::-1])\n"},
]
for i, record in enumerate(RECORDS):
    record.update(task_id=f"t{i}", problem_id=f"p{i}", is_correct=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A tokenizer and a model that memorised both records ([BOS] prompt response [EOS])."""
    tokenizer = train_bpe_tokenizer(tokenizer_training_texts(RECORDS * 4), vocab_size=1000)
    rows = [encode_record(record, tokenizer, max_length=200)["input_ids"] for record in RECORDS]
    width = max(len(row) for row in rows)
    sequences = [row + [tokenizer.eos_token_id] * (width - len(row)) for row in rows]
    torch.manual_seed(0)
    model = build_model(seed=0, scale=1.0, vocab_size=len(tokenizer), max_seq_len=256)
    train_mtp(model, sequences, steps=70, lr=5e-3)
    folder = tmp_path_factory.mktemp("generation-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    return model, tokenizer, folder


def test_prompt_ids_are_the_training_row_before_the_response(trained) -> None:
    _, tokenizer, _ = trained
    for record in RECORDS:
        row = encode_record(record, tokenizer, max_length=200)
        prompt_length = row["labels"].count(-100)
        [prompt] = encode_prompts([(record["instruction"], record["input"])], tokenizer)
        assert prompt == row["input_ids"][:prompt_length]
        assert prompt[0] == tokenizer.bos_token_id


def test_generate_text_returns_the_response_and_stops_at_eos(trained) -> None:
    model, tokenizer, _ = trained
    texts = generate_text(model, tokenizer, [RECORDS[0]["instruction"], RECORDS[1]],
                          max_new_tokens=60)
    assert texts == [RECORDS[0]["output"], RECORDS[1]["output"]]
    assert generate_text(model, tokenizer, [RECORDS[1]], max_new_tokens=60,
                         speculative=True) == [RECORDS[1]["output"]]


def test_generate_text_rejects_a_record_without_instruction(trained) -> None:
    model, tokenizer, _ = trained
    with pytest.raises(ValueError, match=r"instructions\[0\]"):
        generate_text(model, tokenizer, [{"input": "x"}])


def test_kedro_wmtp_generate_prints_completions(trained, tmp_path: Path) -> None:
    _, _, folder = trained
    runner = CliRunner()
    single = runner.invoke(cli, ["wmtp", "generate", "--model", str(folder), "--device", "cpu",
                                 "--prompt", RECORDS[0]["instruction"], "--max-new-tokens", "60"])
    assert single.exit_code == 0, single.output
    assert single.output == RECORDS[0]["output"] + "\n"
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    many = runner.invoke(cli, ["wmtp", "generate", "--model", str(folder), "--device", "cpu",
                               "--prompts-file", str(prompts_file), "--jsonl", "--speculative",
                               "--max-new-tokens", "60"])
    assert many.exit_code == 0, many.output
    lines = [json.loads(line) for line in many.stdout.splitlines() if line.startswith("{")]
    assert [line["completion"] for line in lines] == [r["output"] for r in RECORDS]


def test_kedro_wmtp_generate_names_a_missing_tokenizer(trained, tmp_path: Path) -> None:
    model, _, _ = trained
    model.save_pretrained(tmp_path / "bare")
    result = CliRunner().invoke(cli, ["wmtp", "generate", "--model", str(tmp_path / "bare"),
                                      "--device", "cpu", "--prompt", "x"])
    assert result.exit_code != 0
    assert "--tokenizer data/05_model_input/tokenizer" in result.output
