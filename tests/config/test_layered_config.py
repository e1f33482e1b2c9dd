"""Layered parameters through a real KedroSession, and the dry-run command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from weighted_mtp.config.validate import plain_copy

ROOT = Path(__file__).resolve().parents[2]


def _params(env: str | None = None, runtime_params: dict | None = None) -> dict:
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=env, runtime_params=runtime_params) as session:
        return plain_copy(session.load_context().params)


def test_recipe_env_deep_merges_over_base():
    params = _params(env="verifiable")
    assert params["training"]["stage2"]["beta"] == 1.2
    assert params["training"]["stage2"]["value_coef"] == 0.5  # survives from base
    assert params["training"]["stage2"]["weight_clip_max"] == 5.0
    assert params["project"]["experiment"] == "verifiable"


def test_base_defaults_are_the_seed_defaults():
    stage2 = _params(env="base")["training"]["stage2"]
    assert (stage2["beta"], stage2["value_coef"], stage2["max_grad_norm"]) == (0.9, 0.5, 0.5)
    assert (stage2["weight_clip_min"], stage2["weight_clip_max"]) == (0.1, 5.0)


@pytest.mark.parametrize(
    ("env", "weighting", "stage1_enabled"),
    [("baseline", "uniform", False), ("verifiable", "td", True), ("rho1", "rho1", True)],
)
def test_each_recipe_overrides_only_its_keys(env, weighting, stage1_enabled):
    params = _params(env=env)
    assert params["project"]["recipe"] == env
    assert params["training"]["stage2"]["weighting"] == weighting
    assert params["training"]["stage1"]["enabled"] is stage1_enabled
    assert params["training"]["stage1"]["loss"] == "mse"  # untouched base value


def test_runtime_params_override_one_nested_key():
    params = _params(env="verifiable", runtime_params={"training": {"stage2": {"beta": 2.0}}})
    assert params["training"]["stage2"]["beta"] == 2.0
    assert params["training"]["stage2"]["value_coef"] == 0.5


def _kedro(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_dry_run_prints_the_merged_parameters_as_yaml():
    result = _kedro("wmtp", "config", "--env", "verifiable", "--params", "training.stage2.beta=2.0,training.log_interval=5")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    expected = _params(env="verifiable", runtime_params={"training": {"stage2": {"beta": 2.0}, "log_interval": 5}})
    assert document["parameters"] == expected
    assert document["parameters"]["training"]["stage2"]["beta"] == 2.0
    assert "train_stage2" in document["nodes"]
    assert "build_datasets" in document["nodes"]


@pytest.mark.slow
def test_dry_run_reports_invalid_parameters():
    result = _kedro("wmtp", "config", "--params", "training.stage2.beta=-1")
    assert result.returncode != 0
    assert "training.stage2.beta: must be > 0" in result.stderr
    assert result.stdout.strip() == ""
