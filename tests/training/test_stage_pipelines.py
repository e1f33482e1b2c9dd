"""The stage1 and stage2 pipelines the Kedro way: in memory with SequentialRunner, a catalog of
MemoryDatasets, and each node fed only the ``params:`` blocks it declares (no run_config)."""

from __future__ import annotations

import copy

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from weighted_mtp.datasets import ModelDirectoryDataset
from weighted_mtp.pipelines.stage1.pipeline import create_pipeline as stage1_pipeline
from weighted_mtp.pipelines.stage2.pipeline import create_pipeline as stage2_pipeline


class _Kept(MemoryDataset):
    """A MemoryDataset the runner does not release after its last reader (to inspect it)."""

    def _release(self) -> None:
        pass


def _params(config, model_dir, checkpoint_dir) -> dict[str, MemoryDataset]:
    raw = copy.deepcopy(config.raw)
    raw["project"]["checkpoint_dir"] = str(checkpoint_dir)
    raw["models"]["policy"].update(path=str(model_dir), create_micro=False)
    blocks = {"project": raw["project"], "training": raw["training"], "models": raw["models"],
              "models.policy": raw["models"]["policy"], "dataset.max_length": raw["dataset"]["max_length"],
              "training.distributed": raw["training"]["distributed"]}
    return {f"params:{name}": MemoryDataset(value) for name, value in blocks.items()}


def test_stage_pipelines_run_in_memory_with_their_parameter_blocks(base_adapter, tokenizer, train_records,
                                                                  val_records, make_config, tmp_path):
    config = make_config({"training": {"stage1": {"n_epochs": 0.4}, "stage2": {"n_epochs": 0.4}}})
    base_adapter.save_pretrained(tmp_path / "model")
    pipeline: Pipeline = stage1_pipeline() + stage2_pipeline()
    catalog = DataCatalog({
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "train_records": MemoryDataset(train_records), "validation_records": MemoryDataset(val_records),
        "stage1_model": MemoryDataset(copy_mode="assign"),
        "stage2_summary": _Kept(), "best_model_metrics": _Kept(), "stage1_metrics": _Kept(),
        "best_model@model": ModelDirectoryDataset(str(tmp_path / "best")),
        **_params(config, tmp_path / "model", tmp_path / "checkpoints"),
    })
    assert not any(name in {"parameters", "run_config"} for node in pipeline.nodes for name in node.inputs)
    outputs = SequentialRunner().run(pipeline, catalog)
    summary, stage1 = catalog.load("stage2_summary"), catalog.load("stage1_metrics")
    assert (stage1["stage"], stage1["recipe"], summary["stage"]) == ("stage1", "verifiable", "stage2")
    assert summary["global_step"] == summary["total_steps"] == 2
    assert summary["best_checkpoint"].startswith(str(tmp_path / "checkpoints"))
    metrics = outputs["metrics"].load() if hasattr(outputs["metrics"], "load") else outputs["metrics"]
    assert metrics["best_model"] == catalog.load("best_model_metrics")
    # the exported best model is the best stage-2 checkpoint's weights
    best_state = torch.load(summary["best_checkpoint"], weights_only=False)["model"]
    exported = ModelDirectoryDataset(str(tmp_path / "best")).load().state_dict()
    assert all(torch.equal(exported[key], value) for key, value in best_state.items())


def test_the_evaluate_node_runs_alone_from_a_saved_model(base_adapter, tokenizer, val_records, make_config,
                                                         tmp_path):
    """Only persisted inputs and parameter blocks: ``kedro run --nodes evaluate`` in memory."""
    config = make_config()
    base_adapter.save_pretrained(tmp_path / "best")
    pipeline = stage2_pipeline().only_nodes("evaluate")
    catalog = DataCatalog({
        "best_model@model": ModelDirectoryDataset(str(tmp_path / "best")),
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "validation_records": MemoryDataset(val_records),
        **_params(config, tmp_path / "best", tmp_path / "checkpoints"),
    })
    figures = SequentialRunner().run(pipeline, catalog)["best_model_metrics"]
    figures = figures.load() if hasattr(figures, "load") else figures
    assert figures["val_tokens"] > 0 and figures["val_loss"] == pytest.approx(
        figures["val_weighted_mtp_loss"] + 0.5 * figures["val_value_loss"], rel=1e-6)
