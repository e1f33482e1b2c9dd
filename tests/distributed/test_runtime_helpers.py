"""The rank helpers, samplers and catalog pieces of torchrun support, in one process.

Nothing here starts a process group: these are the answers every rank relies on before
the group exists (settings.py, the catalog hook) and the single-process identities.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset

from weighted_mtp.datasets import JSONLDataset
from weighted_mtp.datasets.rank_zero import ReadOnlyDataset, make_read_only, persisted_names
from weighted_mtp.hooks import DistributedHooks
from weighted_mtp.runtime import distributed
from weighted_mtp.runtime.parallel import _buckets, prepare_model, sync_gradients
from weighted_mtp.training.evaluate import filler_batch
from weighted_mtp.training.sampler import ResumableSampler

TORCHRUN_ENV = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}


def test_rank_helpers_read_torchrun_variables_before_the_group_exists():
    assert (distributed.get_rank(TORCHRUN_ENV), distributed.get_local_rank(TORCHRUN_ENV),
            distributed.get_world_size(TORCHRUN_ENV)) == (3, 1, 4)
    assert not distributed.is_main_process(TORCHRUN_ENV)
    assert distributed.launched_distributed(TORCHRUN_ENV)
    assert distributed.is_main_process({}) and not distributed.launched_distributed({})
    assert distributed.is_main_process({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        distributed.get_rank({"RANK": "x"})


def test_one_process_pays_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.is_distributed()
    assert distributed.init_distributed() is False
    tensor = torch.ones(3)
    assert distributed.all_reduce_sum(tensor) is tensor
    assert distributed.max_over_ranks(7) == 7
    distributed.barrier()
    distributed.shutdown()
    model = torch.nn.Linear(2, 2)
    assert prepare_model(model, "fsdp", torch.device("cpu")) is model  # nothing to shard over
    model(torch.ones(1, 2)).sum().backward()
    before = model.weight.grad.clone()
    sync_gradients(model.parameters(), model)
    assert torch.equal(model.weight.grad, before)


def test_backend_choice():
    assert distributed.resolve_backend("auto", "cpu") == "gloo"
    assert distributed.resolve_backend("gloo", "auto") == "gloo"
    with pytest.raises(ValueError, match="unknown backend 'mpi'"):
        distributed.resolve_backend("mpi")
    if not torch.cuda.is_available():
        assert distributed.resolve_backend("auto", "auto") == "gloo"
        with pytest.raises(ValueError, match="'nccl' but the ranks run on the CPU"):
            distributed.resolve_backend("nccl", "auto")


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown 'zero3'"):
        prepare_model(torch.nn.Linear(2, 2), "zero3", torch.device("cpu"))


def test_peer_failures_are_told_apart_from_causes():
    assert distributed.is_peer_failure(RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1"))
    assert not distributed.is_peer_failure(RuntimeError("injected failure"))


def test_validation_shards_cover_every_row_once():
    shards = [ResumableSampler(11, shuffle=False, rank=r, world_size=3, pad=False) for r in range(3)]
    indices = [list(shard) for shard in shards]
    assert indices == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert [len(shard) for shard in shards] == [4, 4, 3]
    assert sorted(i for shard in indices for i in shard) == list(range(11))
    assert list(ResumableSampler(2, shuffle=False, rank=2, world_size=3, pad=False)) == []
    padded = [list(ResumableSampler(11, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in padded] == [4, 4, 4]  # training still evens out the ranks


def test_filler_batch_counts_nothing():
    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long), "labels": torch.ones(2, 4, dtype=torch.long),
             "loss_mask": torch.ones(2, 4), "attention_mask": torch.ones(2, 4, dtype=torch.long),
             "rewards": torch.ones(2)}
    filler = filler_batch(None, batch)
    assert (filler["labels"] == -100).all() and filler["loss_mask"].sum() == 0
    assert filler["attention_mask"].sum() == 0 and filler["input_ids"] is batch["input_ids"]
    with pytest.raises(ValueError, match="needs a DataLoader"):
        filler_batch([batch], None)


def test_buckets_split_by_size_and_dtype():
    tensors = [torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.float64), torch.zeros(10)]
    sizes = [[t.numel() for t in bucket] for bucket in _buckets(tensors, limit=8)]
    assert sizes == [[4, 4], [4], [10]]


def test_other_ranks_read_but_never_write(tmp_path):
    path = tmp_path / "rows.jsonl"
    JSONLDataset(str(path)).save([{"a": 1}])
    catalog = DataCatalog({"rows": JSONLDataset(str(path)), "model": MemoryDataset(copy_mode="assign")})
    names = persisted_names(catalog)
    assert names == frozenset({"rows"})
    make_read_only(catalog, names)
    assert isinstance(catalog.get("rows"), ReadOnlyDataset) and isinstance(catalog.get("model"), MemoryDataset)
    catalog.save("rows", [{"a": 2}])
    assert catalog.load("rows") == [{"a": 1}]  # rank 0's file, untouched


def test_the_hook_does_nothing_without_torchrun(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    catalog = DataCatalog({"rows": JSONLDataset(str(tmp_path / "rows.jsonl"))})
    hooks = DistributedHooks()
    hooks.after_catalog_created(catalog)
    hooks.before_pipeline_run({}, None, catalog)
    hooks.after_dataset_saved("rows", [], None)
    hooks.after_pipeline_run({}, None, catalog)
    assert isinstance(catalog.get("rows"), JSONLDataset)


@pytest.mark.parametrize("rank, disabled", [("0", ("kedro_mlflow",)), ("1", ("kedro_mlflow", "kedro-viz"))])
def test_settings_disable_kedro_viz_hooks_and_quiet_logs_on_other_ranks(rank, disabled):
    """In a fresh interpreter, as torchrun starts each rank (RANK set before Python)."""
    code = ("import logging, weighted_mtp.settings as s; "
            "print(s.DISABLE_HOOKS_FOR_PLUGINS, logging.getLogger('weighted_mtp').level)")
    env = {"RANK": rank, "WORLD_SIZE": "2", "PATH": "/usr/bin:/bin", "KEDRO_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    plugins, level = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert plugins == str(disabled)
    assert (int(level) == 30) == (rank == "1")  # WARNING on rank 1 only


def test_kill_tree_ends_workers_that_left_the_launchers_session():
    """What run_torchrun does on a timeout: torchrun's workers run in their own sessions and
    hold the output pipe, so only killing each process lets the test read to the end."""
    from dist_helpers import kill_tree

    worker = "import time; time.sleep(600)"
    launcher = ("import subprocess, sys, time; "
                f"w = subprocess.Popen([sys.executable, '-c', {worker!r}], start_new_session=True); "
                "print(w.pid, flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    worker_pid = int(process.stdout.readline())
    kill_tree(process)
    assert process.returncode == -9
    status = Path(f"/proc/{worker_pid}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()  # gone (or dead, not yet reaped)
