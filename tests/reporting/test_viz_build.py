"""`kedro viz build` renders the real project offline: every node, the layers, the tags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kedro.framework.startup import bootstrap_project

from project_runs import make_scratch_project

pytestmark = pytest.mark.slow
pytest.importorskip("kedro_viz", reason="kedro-viz is not installed: pip install -e '.[viz]' (`dev` includes it)")

LAYERS = ["raw", "primary", "model_input", "models", "model_output", "reporting"]
TAGS = {"data", "stage1", "stage2", "evaluation"}


@pytest.fixture(scope="module")
def viz_main(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = make_scratch_project(tmp_path_factory.mktemp("viz"), n_problems=1)
    result = subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    bootstrap_project(workdir)
    return json.loads((workdir / "build" / "api" / "main").read_text())


def test_build_lists_every_node_of_the_default_pipeline(viz_main):
    from weighted_mtp.pipeline_registry import register_pipelines

    expected = {node.name for node in register_pipelines()["__default__"].nodes}
    tasks = {node["name"] for node in viz_main["nodes"] if node["type"] == "task"}
    assert tasks == expected
    assert {"build_datasets", "load_tokenizer", "load_model", "pretrain_micro",
            "train_stage1", "train_stage2", "save_best", "evaluate", "report_metrics",
            "report_token_weights", "plot_token_weight_histogram"} <= tasks


def test_layers_are_ordered_and_every_persisted_dataset_has_one(viz_main):
    # kedro-viz drops the layers (empty list) when they form a cycle.
    assert viz_main["layers"] == LAYERS
    layers = {node["name"]: node.get("layer") for node in viz_main["nodes"] if node["type"] == "data"}
    unlayered = {name for name, layer in layers.items() if layer is None}
    assert unlayered == set()  # no config travels as a dataset: nodes take their params: blocks
    assert layers["token_weights_report"] == layers["token_value_plots"] == "reporting"
    assert layers["best_model"] == "model_output" and layers["alpaca_records"] == "primary"


def test_nodes_carry_the_stage_tags(viz_main):
    assert {tag["id"] for tag in viz_main["tags"]} == TAGS
    tags = {node["name"]: set(node["tags"]) for node in viz_main["nodes"] if node["type"] == "task"}
    assert tags["build_datasets"] == {"data"}
    assert tags["train_stage1"] == {"stage1"} and tags["train_stage2"] == {"stage2"}
    assert tags["report_token_weights"] == tags["evaluate"] == {"evaluation"}
