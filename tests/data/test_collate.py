"""Tokenisation of records (BOS/EOS, -100 on the prompt, truncation) and collation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from weighted_mtp.data import (
    IGNORE_INDEX,
    MTPCollator,
    TokenizedDataset,
    encode_record,
    format_prompt,
    train_bpe_tokenizer,
)

BOS, EOS, PAD = 1, 2, 3


def make_record(task: str, output: str, is_correct: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "instruction": "Read n and print n + 1.",
        "input": "",
        "output": output,
        "task_id": task,
        "problem_id": task.split("/")[0],
        "is_correct": is_correct,
        "difficulty": 1,
        **extra,
    }


SHORT = make_record("p1/correct/0", "print(int(input()) + 1)\n")
LONG = make_record("p2/incorrect/0", "n = int(input())\nfor i in range(n):\n    print(i)\n", False)


@pytest.fixture(scope="module")
def tokenizer():
    texts = [format_prompt(r["instruction"]) + r["output"] for r in (SHORT, LONG)] * 10
    return train_bpe_tokenizer(texts, vocab_size=320)


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_row_is_bos_prompt_response_eos_with_prompt_ignored(tokenizer) -> None:
    prompt = token_ids(tokenizer, format_prompt(SHORT["instruction"]))
    response = token_ids(tokenizer, SHORT["output"])

    row = encode_record(SHORT, tokenizer, max_length=1024)

    assert row["input_ids"] == [BOS, *prompt, *response, EOS]
    assert row["labels"] == [IGNORE_INDEX] * (1 + len(prompt)) + [*response, EOS]
    assert row["truncated"] is False
    assert (row["is_correct"], row["problem_id"], row["task_id"]) == (True, "p1", "p1/correct/0")
    assert tokenizer.decode(row["input_ids"][1 + len(prompt) : -1]) == SHORT["output"]


def test_with_input_variant_uses_the_input_template(tokenizer) -> None:
    record = {**SHORT, "input": "1"}
    prompt = token_ids(tokenizer, format_prompt(record["instruction"], "1"))

    row = encode_record(record, tokenizer, max_length=1024)

    assert row["input_ids"][1 : 1 + len(prompt)] == prompt
    assert "### Input:\n1\n\n### Response:\n" in format_prompt(record["instruction"], "1")


def test_exact_fit_is_not_truncated(tokenizer) -> None:
    full = encode_record(SHORT, tokenizer, max_length=1024)

    row = encode_record(SHORT, tokenizer, max_length=len(full["input_ids"]))

    assert row == full


def test_truncated_row_has_no_eos_and_is_flagged(tokenizer) -> None:
    full = encode_record(SHORT, tokenizer, max_length=1024)
    length = len(full["input_ids"]) - 3

    row = encode_record(SHORT, tokenizer, max_length=length)

    assert row["truncated"] is True
    assert row["input_ids"] == full["input_ids"][:length]
    assert row["labels"] == full["labels"][:length]
    assert row["input_ids"][-1] != EOS and EOS not in row["labels"]


def test_prompt_filling_max_length_leaves_no_labels(tokenizer) -> None:
    row = encode_record(SHORT, tokenizer, max_length=5)

    assert len(row["input_ids"]) == 5
    assert row["truncated"] is True
    assert row["labels"] == [IGNORE_INDEX] * 5


def test_bad_arguments_are_reported(tokenizer) -> None:
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        encode_record(SHORT, tokenizer, max_length=1)
    broken = {k: v for k, v in SHORT.items() if k != "output"}
    with pytest.raises(ValueError, match=r"record p1/correct/0: missing field\(s\) \['output'\]"):
        encode_record(broken, tokenizer, max_length=64)
    with pytest.raises(ValueError, match=r"record p1/correct/0: 'is_correct' must be true or false"):
        encode_record({**SHORT, "is_correct": "false"}, tokenizer, max_length=64)  # not bool("false")


def test_collator_pads_dynamically_and_masks(tokenizer) -> None:
    short = encode_record(SHORT, tokenizer, max_length=1024)
    long = encode_record(LONG, tokenizer, max_length=1024)
    n_short, n_long = len(short["input_ids"]), len(long["input_ids"])
    assert n_short < n_long

    batch = MTPCollator(pad_token_id=PAD)([short, long])

    assert batch["input_ids"].shape == batch["labels"].shape == (2, n_long)
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    assert batch["input_ids"][0].tolist() == short["input_ids"] + [PAD] * (n_long - n_short)
    assert batch["labels"][0].tolist() == short["labels"] + [IGNORE_INDEX] * (n_long - n_short)
    assert batch["attention_mask"][0].tolist() == [1] * n_short + [0] * (n_long - n_short)
    assert batch["attention_mask"][1].tolist() == [1] * n_long
    assert batch["loss_mask"].dtype == torch.float32
    assert torch.equal(batch["loss_mask"], (batch["labels"] != IGNORE_INDEX).float())
    assert batch["loss_mask"][0, 0] == 0 and batch["loss_mask"][0, n_short - 1] == 1  # BOS, EOS
    assert batch["rewards"].tolist() == [1.0, 0.0] and batch["rewards"].dtype == torch.float32
    assert batch["is_correct"].tolist() == [True, False]
    assert batch["truncated"].dtype == torch.bool and batch["truncated"].tolist() == [False, False]
    assert batch["task_id"] == ["p1/correct/0", "p2/incorrect/0"]
    assert batch["problem_id"] == ["p1", "p2"]


def test_collator_flags_truncated_rows(tokenizer) -> None:
    full = encode_record(SHORT, tokenizer, max_length=1024)
    cut = encode_record(LONG, tokenizer, max_length=len(full["input_ids"]) - 1)

    batch = MTPCollator(pad_token_id=PAD)([full, cut])

    assert batch["truncated"].tolist() == [False, True]
    assert batch["input_ids"].shape[1] == len(full["input_ids"])  # the longest row
    assert (batch["labels"][1] == EOS).sum() == 0


def test_collator_pad_to_multiple_of(tokenizer) -> None:
    row = encode_record(SHORT, tokenizer, max_length=1024)

    batch = MTPCollator(pad_token_id=PAD, pad_to_multiple_of=64)([row])

    assert batch["input_ids"].shape[1] % 64 == 0
    assert batch["input_ids"].shape[1] - len(row["input_ids"]) < 64
    with pytest.raises(ValueError, match="empty batch"):
        MTPCollator(pad_token_id=PAD)([])


def test_tokenized_dataset_matches_encode_record_and_filters(tokenizer) -> None:
    records = [SHORT, LONG, make_record("p3/correct/0", "print(2)\n")]

    dataset = TokenizedDataset(records, tokenizer, max_length=1024)
    correct = TokenizedDataset(records, tokenizer, max_length=1024, only_correct=True)

    assert len(dataset) == 3
    assert [dataset[i] for i in range(3)] == [encode_record(r, tokenizer, 1024) for r in records]
    assert [row["task_id"] for row in correct] == ["p1/correct/0", "p3/correct/0"]
    assert dataset.filter(lambda row: row["is_correct"]).rows == correct.rows


def test_tokenized_dataset_can_drop_rows_without_labels(tokenizer) -> None:
    kept = TokenizedDataset([SHORT, LONG], tokenizer, max_length=5)
    dropped = TokenizedDataset([SHORT, LONG], tokenizer, max_length=5, drop_unlabelled=True)

    assert len(kept) == 2 and all(row["truncated"] for row in kept)
    assert len(dropped) == 0


def test_dataloader_end_to_end(tokenizer) -> None:
    dataset = TokenizedDataset([SHORT, LONG] * 3, tokenizer, max_length=1024)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, shuffle=False, collate_fn=MTPCollator(pad_token_id=PAD)
    )

    shapes = [batch["input_ids"].shape for batch in loader]

    assert [s[0] for s in shapes] == [4, 2]


def test_cut_rows_are_counted_and_reported_once(tokenizer, caplog) -> None:
    long_length = len(encode_record(LONG, tokenizer, max_length=1024)["input_ids"])
    short_length = len(encode_record(SHORT, tokenizer, max_length=1024)["input_ids"])
    limit = (short_length + long_length) // 2
    assert short_length <= limit < long_length
    records = [SHORT, LONG, SHORT]

    with caplog.at_level("WARNING", logger="weighted_mtp.data.collate"):
        dataset = TokenizedDataset(records, tokenizer, max_length=limit, name="training")
        whole = TokenizedDataset(records, tokenizer, max_length=1024, name="validation")

    assert (dataset.truncated, whole.truncated, len(dataset)) == (1, 0, 3)  # cut, not dropped
    assert dataset.filter(lambda row: row["truncated"]).truncated == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"dataset.max_length {limit}: 1 of 3 training rows were cut "
        f"(longest {long_length} tokens, task p2/incorrect/0)"
    ]


def test_dropped_cut_rows_are_reported(tokenizer, caplog) -> None:
    with caplog.at_level("WARNING", logger="weighted_mtp.data.collate"):
        dataset = TokenizedDataset([SHORT, LONG], tokenizer, max_length=5, drop_unlabelled=True)

    assert (dataset.truncated, len(dataset)) == (2, 0)
    assert caplog.records[-1].getMessage().startswith("dataset.max_length 5: 2 of 2 rows were cut")
    assert caplog.records[-1].getMessage().endswith(
        "; 2 of them kept no response token and were dropped")
