"""The data_processing pipeline the Kedro way: in memory, SequentialRunner, MemoryDatasets,
each node fed only the parameter blocks it declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from weighted_mtp.pipelines.data_processing.nodes import build_records
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
