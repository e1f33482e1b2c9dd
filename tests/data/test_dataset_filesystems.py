"""The project's catalog datasets on other fsspec filesystems: ``memory://`` and ``file://``.

The data_processing pipeline runs with every dataset in memory (nothing reaches the disk);
a model directory and a tokenizer round-trip through ``memory://``; ``file://`` URLs write
the same local files a plain path does, with the same atomic writes.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import fsspec
import pytest
import torch
from kedro.io import DataCatalog, DatasetError
from kedro.runner import SequentialRunner

from weighted_mtp.data import train_bpe_tokenizer
from weighted_mtp.datasets import JSONLDataset, ModelBundle, ModelDirectoryDataset, ModelDirectoryPath, TokenizerDataset
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.models.micro import micro_args
from weighted_mtp.pipelines.data_processing.pipeline import create_pipeline

ROOT = Path(__file__).resolve().parents[2]
DATASET = {"train": "unused", "validation": "unused", "max_length": 384, "validation_fraction": 0.2,
           "test_fraction": 0.3, "split_seed": 42, "max_solutions_per_problem": 2, "tokenizer_vocab_size": 400}
DATA_FILES = {"raw_problems": "01_raw/code_problems.jsonl",
              "development_problems": "03_primary/development_problems.jsonl",
              "alpaca_records": "03_primary/alpaca_records.jsonl", "train_records": "05_model_input/train.jsonl",
              "validation_records": "05_model_input/validation.jsonl",
              "test_problems": "05_model_input/test_problems.jsonl"}


@pytest.fixture
def memory_root():
    """A fresh folder of the process-wide memory filesystem, removed afterwards."""
    root = f"/wmtp-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _catalog(root: str, prefix: str) -> DataCatalog:
    config = {name: {"type": "weighted_mtp.datasets.JSONLDataset", "filepath": f"{prefix}{root}/{path}"}
              for name, path in DATA_FILES.items()}
    config["train_records"]["check"] = config["validation_records"]["check"] = "alpaca"
    config["tokenizer"] = {"type": "weighted_mtp.datasets.TokenizerDataset",
                           "path": f"{prefix}{root}/05_model_input/tokenizer"}
    return DataCatalog.from_config(config)


def _raw(n: int = 40) -> list[dict]:
    with (ROOT / "data" / "01_raw" / "code_problems.jsonl").open() as handle:
        return [json.loads(next(handle)) for _ in range(n)]


def _tiny_model(vocab_size: int) -> MetaLlamaMTPAdapter:
    torch.manual_seed(0)
    return MetaLlamaMTPAdapter(micro_args(vocab_size, dim=32, n_layers=2, n_heads=2, n_kv_heads=1,
                                          n_future_tokens=2, max_seq_len=64))


def test_data_processing_runs_on_the_memory_filesystem(memory_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative local path anywhere would land here
    catalog = _catalog(memory_root, "memory://")
    catalog.save("raw_problems", _raw())
    catalog["params:dataset"] = DATASET
    catalog["params:models.policy.path"] = str(tmp_path / "no-model")

    SequentialRunner().run(create_pipeline(), catalog)

    fresh = _catalog(memory_root, "memory://")  # read back what the run wrote
    train, validation = fresh.load("train_records"), fresh.load("validation_records")
    test_ids = {problem["name"] for problem in fresh.load("test_problems")}
    assert train and validation and test_ids
    assert not test_ids & {record["problem_id"] for record in train + validation}
    assert 100 < len(fresh.load("tokenizer")) <= 400
    written = fsspec.filesystem("memory").find(memory_root)
    assert f"{memory_root}/05_model_input/tokenizer/tokenizer.json" in written
    assert not any(".tmp-" in path for path in written)  # every temp file was moved into place
    assert list(tmp_path.iterdir()) == []  # nothing on the local disk


def test_file_urls_write_the_local_files_atomically(tmp_path):
    root = str(tmp_path / "data")
    catalog = _catalog(root, "file://")
    records = [{"name": "p", "text": "é ✓"}, {"name": "q", "nested": [1, None]}]
    catalog.save("test_problems", records)
    tokenizer = train_bpe_tokenizer(["print(1)\n", "print(2)\n"] * 20, vocab_size=300)
    catalog.save("tokenizer", tokenizer)

    assert catalog.load("test_problems") == records
    local = tmp_path / "data" / "05_model_input"
    assert (local / "test_problems.jsonl").read_text(encoding="utf-8").splitlines()[0] == '{"name": "p", "text": "é ✓"}'
    assert sorted(p.name for p in local.iterdir()) == ["test_problems.jsonl", "tokenizer"]  # no temp left
    assert catalog.load("tokenizer").encode("print(1)\n") == tokenizer.encode("print(1)\n")
    (local / "test_problems.jsonl").write_text("{oops\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(local))}/test_problems\.jsonl:1: invalid JSON"):
        catalog.load("test_problems")


def test_model_directory_round_trips_through_memory(memory_root):
    tokenizer = train_bpe_tokenizer(["def f(x):\n    return x\n"] * 30, vocab_size=300)
    model = _tiny_model(len(tokenizer))
    url = f"memory://{memory_root}/07_model_output/best_model/default"
    dataset = ModelDirectoryDataset(path=url)
    assert not dataset.exists()

    dataset.save(ModelBundle(adapter=model, tokenizer=tokenizer))
    dataset.save(model)  # a second save without a tokenizer keeps the folder's tokenizer

    assert dataset.exists()
    loaded = dataset.load()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert len(TokenizerDataset(path=url).load()) == len(tokenizer)  # the model directory's tokenizer/
    local = ModelDirectoryPath(path=url).load()
    assert (local / "metadata.json").is_file() and (local / "tokenizer" / "tokenizer.json").is_file()
    assert not any(".tmp-" in path for path in fsspec.filesystem("memory").find(memory_root))
    with pytest.raises(DatasetError, match=rf"is a model directory .*TokenizerDataset at {url}/tokenizer "):
        TokenizerDataset(path=url).save(tokenizer)


def test_a_host_in_a_local_style_url_is_refused():
    with pytest.raises(ValueError, match=r"memory://data/x\.jsonl: .*dropping 'data'.*memory:///data/x\.jsonl"):
        JSONLDataset(filepath="memory://data/x.jsonl")
