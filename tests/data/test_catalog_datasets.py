"""Kedro catalog datasets: JSONLDataset and TokenizerDataset through a DataCatalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog, DatasetError

from weighted_mtp.data import train_bpe_tokenizer
from weighted_mtp.datasets import JSONLDataset, TokenizerDataset

ROOT = Path(__file__).resolve().parents[2]

RECORDS = [
    {"instruction": "Print ✓.", "input": "", "output": "print('✓')\n", "task_id": "p/correct/0",
     "problem_id": "p", "is_correct": True, "difficulty": 3, "extra": {"nested": [1, None]}},
    {"instruction": "Print ✓.", "input": "", "output": "print('x')\n", "task_id": "p/incorrect/0",
     "problem_id": "p", "is_correct": False, "difficulty": 3},
]


def make_catalog(root: Path) -> DataCatalog:
    return DataCatalog.from_config(
        {
            "train_records": {
                "type": "weighted_mtp.datasets.JSONLDataset",
                "filepath": str(root / "05_model_input" / "train.jsonl"),
            },
            "tokenizer": {
                "type": "weighted_mtp.datasets.TokenizerDataset",
                "path": str(root / "06_models" / "tokenizer"),
            },
        }
    )


def test_jsonl_dataset_round_trips_through_the_catalog(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    assert not catalog.exists("train_records")

    catalog.save("train_records", RECORDS)

    assert catalog.exists("train_records")
    assert catalog.load("train_records") == RECORDS
    assert [p.name for p in (tmp_path / "05_model_input").iterdir()] == ["train.jsonl"]


def test_jsonl_dataset_load_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")

    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: invalid JSON"):
        JSONLDataset(filepath=str(path)).load()


def test_jsonl_dataset_describes_its_file(tmp_path: Path) -> None:
    dataset = JSONLDataset(filepath=str(tmp_path / "r.jsonl"))

    assert "r.jsonl" in str(dataset)


def test_tokenizer_dataset_round_trips_and_replaces_atomically(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    texts = ["def f(x):\n    return x + 1\n"] * 20
    first = train_bpe_tokenizer(texts, vocab_size=300)
    second = train_bpe_tokenizer(texts + ["print('other')\n"] * 20, vocab_size=320)
    assert not catalog.exists("tokenizer")

    catalog.save("tokenizer", first)
    catalog.save("tokenizer", second)  # replaces the folder
    loaded = catalog.load("tokenizer")

    assert loaded.get_vocab() == second.get_vocab()
    assert loaded.decode(loaded("    x = 'é'\n", add_special_tokens=False)["input_ids"]) == (
        "    x = 'é'\n"
    )
    assert [p.name for p in (tmp_path / "06_models").iterdir()] == ["tokenizer"]


def test_tokenizer_dataset_loads_from_a_model_directory_but_never_saves_over_it(
    tmp_path: Path,
) -> None:
    tokenizer = train_bpe_tokenizer(["print(1)\n"] * 10, vocab_size=270)
    tokenizer.save_pretrained(str(tmp_path / "model" / "tokenizer"))
    dataset = TokenizerDataset(path=str(tmp_path / "model"))

    assert dataset.exists()
    assert dataset.load().get_vocab() == tokenizer.get_vocab()
    with pytest.raises(DatasetError, match="is a model directory"):
        dataset.save(tokenizer)
    assert (tmp_path / "model" / "tokenizer" / "tokenizer.json").is_file()


@pytest.mark.parametrize("value", ['"false"', "0", "1", "null"])
def test_alpaca_records_need_a_json_boolean_is_correct(tmp_path: Path, value: str) -> None:
    good, bad = (json.dumps(RECORDS[0]), json.dumps(RECORDS[1]).replace('"is_correct": false',
                                                                          f'"is_correct": {value}'))
    path = tmp_path / "train.jsonl"
    path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")  # the blank line still counts

    with pytest.raises(DatasetError, match=rf"train\.jsonl:3: 'is_correct' must be true or false"
                                           rf" \(a JSON boolean\), found {value}"):
        JSONLDataset(filepath=str(path), check="alpaca").load()
    assert len(JSONLDataset(filepath=str(path)).load()) == 2  # other JSONL files are not checked


def test_the_catalog_checks_every_alpaca_record_file() -> None:
    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text())
    checked = {name for name, entry in catalog.items() if entry.get("check") == "alpaca"}
    assert checked == {"alpaca_records", "train_records", "validation_records"}


def test_an_unknown_check_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"check: unknown 'alpca'; expected one of \['alpaca'\]"):
        JSONLDataset(filepath=str(tmp_path / "r.jsonl"), check="alpca")
