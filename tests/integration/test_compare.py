"""``kedro wmtp compare`` end to end on a tiny preset: real child ``kedro run`` processes,
the table with every recipe, reuse of finished runs, and the MLflow parent with children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from project_runs import TINY_PARAMS, make_scratch_project, merge

pytestmark = pytest.mark.slow

RECIPES = "baseline,verifiable,next_token"


def _compare(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    env.pop("WMTP_PRESET", None)
    return subprocess.run([sys.executable, "-m", "kedro", "wmtp", "compare", "--preset", "tiny",
                           "--recipes", RECIPES, "--seeds", "2", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_scratch_project(tmp_path_factory.mktemp("compare"), n_problems=30)
    preset = project / "conf" / "presets" / "tiny"
    preset.mkdir()
    tiny = merge(TINY_PARAMS, {"project": {"preset": "tiny"},
                               "models": {"policy": {"path": "${globals:paths.micro_model}-tiny"}},
                               "evaluation": {"max_new_tokens": 32}})
    (preset / "parameters.yml").write_text(yaml.safe_dump(tiny))
    return project


@pytest.fixture(scope="module")
def first(project) -> subprocess.CompletedProcess:
    return _compare(project)


def test_compare_writes_a_table_with_every_recipe_and_seed(project, first):
    assert first.returncode == 0, first.stderr[-3000:]
    text = (project / "data/08_reporting/comparison/comparison.json").read_text()
    assert "NaN" not in text  # strict JSON: an absent figure is null
    table = json.loads(text)
    assert [row["recipe"] for row in table["rows"]] == ["baseline", "verifiable", "next_token"]
    assert table["rows"][0]["val_value_auroc"] is None  # the baseline trains no critic
    assert sorted((run["recipe"], run["seed"]) for run in table["runs"]) == sorted(
        (recipe, seed) for recipe in RECIPES.split(",") for seed in (0, 1))
    assert table["metrics"] == ["pass@1", "pass@2", "greedy_pass@1"]
    for row in table["rows"]:
        assert row["seeds"] == [0, 1]
        units = row["metrics"]["pass@1"]["units"]
        assert units == 2 * table["n_test_problems"] > 0
        low, high = row["metrics"]["pass@1"]["ci95"]
        assert low <= row["metrics"]["pass@1"]["mean"] <= high
        if row["recipe"] == "baseline":
            assert row["vs_baseline"] == {}
        else:
            assert row["vs_baseline"]["pass@1"]["units"] == units
    verifiable = next(row for row in table["rows"] if row["recipe"] == "verifiable")
    assert 0.0 <= verifiable["val_value_auroc"] <= 1.0  # the critic of the best model
    markdown = (project / "data/08_reporting/comparison/comparison.md").read_text()
    assert "| next_token | 2 |" in markdown and "Δ pass@1" in markdown
    # each seed is its own experiment folder
    assert (project / "data/07_model_output/best_model/compare-tiny-verifiable-seed1").is_dir()


def test_mlflow_parent_run_holds_one_child_per_recipe_and_seed(project, first):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("weighted-mtp/compare")
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get("comparison") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted((run.data.tags["recipe"], run.data.tags["seed"]) for run in children) == sorted(
        (recipe, str(seed)) for recipe in RECIPES.split(",") for seed in (0, 1))
    assert "baseline/pass_at_1" in parents[0].data.metrics
    verifiable = next(run for run in children if run.data.tags["recipe"] == "verifiable")
    for name in ("stage1/val_value_auroc", "stage1/val_value_auroc_within_problem",
                 "stage2/val_value_auroc", "stage2/val_bug_hit_rate", "stage2/val_bug_hit_chance"):
        assert name in verifiable.data.metrics, name


def test_a_second_call_reuses_finished_runs(project, first):
    before = json.loads((project / "data/08_reporting/comparison/comparison.json").read_text())
    second = _compare(project, "--no-mlflow")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "6 finished earlier (reused), 0 to run" in second.stderr
    after = json.loads((project / "data/08_reporting/comparison/comparison.json").read_text())
    assert all(run["reused"] for run in after["runs"])
    assert [row["metrics"] for row in after["rows"]] == [row["metrics"] for row in before["rows"]]


def test_a_changed_recipe_config_trains_that_recipe_again(project, first):
    recipe_file = project / "conf" / "next_token" / "parameters.yml"
    params = yaml.safe_load(recipe_file.read_text())
    params["training"]["stage2"]["learning_rate"] = 5.0e-4
    recipe_file.write_text(yaml.safe_dump(params))
    third = _compare(project, "--no-mlflow", "--seed-list", "0")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "2 finished earlier (reused), 1 to run" in third.stderr  # baseline, verifiable reused
    assert "next_token seed 0: running" in third.stderr
