"""The data_processing pipeline the Kedro way: in memory, SequentialRunner, MemoryDatasets,
each node fed only the parameter blocks it declares."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from weighted_mtp.datasets import JSONLDataset
from weighted_mtp.pipelines.data_processing.nodes import build_datasets, build_records, split_test_problems
from weighted_mtp.pipelines.data_processing.pipeline import create_pipeline

ROOT = Path(__file__).resolve().parents[2]
DATASET = {"train": "unused/train.jsonl", "validation": "unused/validation.jsonl", "max_length": 384,
           "validation_fraction": 0.2, "test_fraction": 0.3, "split_seed": 42,
           "max_solutions_per_problem": 2, "tokenizer_vocab_size": 600}


class _Kept(MemoryDataset):
    """A MemoryDataset the runner does not release after its last reader (to inspect it)."""

    def _release(self) -> None:
        pass


def _raw(n: int = 40) -> list[dict]:
    with (ROOT / "data" / "01_raw" / "code_problems.jsonl").open() as handle:
        return [json.loads(next(handle)) for _ in range(n)]


def test_data_processing_runs_in_memory(tmp_path):
    pipeline = create_pipeline().only_nodes("split_test_problems", "build_records", "build_datasets",
                                            "load_tokenizer")
    catalog = DataCatalog({
        "raw_problems": MemoryDataset(_raw()),
        "params:dataset": MemoryDataset(DATASET),
        "params:models.policy.path": MemoryDataset(str(tmp_path / "no-model-yet")),
        # persisted in the real catalog; kept here so the test can read them after the run
        "train_records": _Kept(), "test_problems": _Kept(),
    })
    outputs = SequentialRunner().run(pipeline, catalog)  # the free outputs
    loaded = {name: (value.load() if hasattr(value, "load") else value) for name, value in outputs.items()}
    test_ids = {p["name"] for p in catalog.load("test_problems")}
    train, validation = catalog.load("train_records"), loaded["validation_records"]
    assert test_ids and train and validation
    assert not test_ids & {r["problem_id"] for r in train + validation}  # the test split never leaks
    assert not {r["problem_id"] for r in train} & {r["problem_id"] for r in validation}
    assert 100 < len(loaded["tokenizer"]) <= 600


def test_a_node_alone_needs_only_its_block_and_names_bad_keys():
    records = build_records(_raw(10), DATASET)
    assert records and all("instruction" in r for r in records)
    with pytest.raises(ValueError, match=r"dataset.max_solutions_per_problem: must be > 0"):
        build_records(_raw(10), {**DATASET, "max_solutions_per_problem": 0})
    with pytest.raises(ValueError, match=r"dataset.split_sed: unknown key"):
        build_records(_raw(10), {**DATASET, "split_sed": 1})


def _written(path: Path, problems: list[dict]) -> list[dict]:
    """The problems as the catalog hands them to a node: written to a real file and read back."""
    path.write_text("".join(json.dumps(p) + "\n" for p in problems) + "\n", encoding="utf-8")
    return JSONLDataset(filepath=str(path)).load()


def test_an_empty_raw_file_is_named(tmp_path):
    raw = tmp_path / "code_problems.jsonl"
    with pytest.raises(ValueError, match=rf"{re.escape(str(raw))}: the raw problem file is empty; regenerate it"):
        split_test_problems(_written(raw, []), {**DATASET, "raw": str(raw)})


def test_an_empty_test_split_is_named(tmp_path):
    raw = tmp_path / "code_problems.jsonl"
    lone = [{**p, "family": p["name"]} for p in _raw(3)]  # three families of one problem each
    with pytest.raises(ValueError, match=rf"test_problems.jsonl: the test split is empty: none of the 3 "
                                         rf"families in {re.escape(str(raw))} has 2 or more problems"):
        split_test_problems(_written(raw, lone), {**DATASET, "raw": str(raw), "test": "x/test_problems.jsonl"})


def test_empty_train_or_validation_splits_are_named(tmp_path):
    raw = tmp_path / "code_problems.jsonl"
    params = {**DATASET, "raw": str(raw)}
    one_problem = build_records(_written(raw, _raw(1)), params)
    with pytest.raises(ValueError, match=r"unused/validation.jsonl: the validation split is empty: "
                                         rf"the {len(one_problem)} records all come from 1 problem"):
        build_datasets(one_problem, params)
    no_python3 = [{**p, "solutions": {"language": [2], "solution": ["int main() {}"]},
                   "incorrect_solutions": None} for p in _raw(4)]
    records = build_records(_written(raw, no_python3), params)
    with pytest.raises(ValueError, match=rf"unused/train.jsonl: the training split is empty: the "
                                         rf"development problems gave no record .* in {re.escape(str(raw))}"):
        build_datasets(records, params)
