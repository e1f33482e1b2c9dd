"""Scale presets: base -> preset -> recipe env -> --params, for every preset x recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from weighted_mtp.config.validate import plain_copy
from weighted_mtp.config_loader import PRESET_VARIABLE, _leaf_keys

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("micro", "study", "local-light", "production")
RECIPES = ("baseline", "verifiable", "rho1")
RECIPE_KEYS = {  # what each recipe means; no preset may change it
    "baseline": {"training.stage2.weighting": "uniform", "training.stage1.enabled": False,
                 "training.stage2.value_coef": 0.0, "training.stage2.beta": 0.9},
    "verifiable": {"training.stage2.weighting": "td", "training.stage1.enabled": True,
                   "training.stage2.value_coef": 0.5, "training.stage2.beta": 1.2},
    "rho1": {"training.stage2.weighting": "rho1", "training.stage1.enabled": True,
             "training.stage2.value_coef": 0.0, "training.stage2.beta": 0.9},
}
SCALE_KEYS = {  # what each preset sets
    "micro": {"project.preset": "micro", "models.policy.dtype": "float32", "training.stage1.freeze_trunk": True,
              "models.policy.create_micro": True, "dataset.max_length": 512,
              "training.stage2.n_epochs": 1.0, "evaluation.n_samples": 5},
    "study": {"project.preset": "study", "models.policy.dtype": "float32", "training.stage1.freeze_trunk": True,
              "models.policy.path": "data/06_models/micro-mtp-study", "training.pretrain.n_epochs": 2.0,
              "training.stage2.n_epochs": 2.5, "evaluation.n_samples": 10},
    "local-light": {"project.preset": "local-light", "models.policy.dtype": "float32",
                    "dataset.max_length": 384, "training.stage2.n_epochs": 0.5},
    "production": {"project.preset": "production", "models.policy.dtype": "bfloat16",
                   "models.policy.create_micro": False, "dataset.max_length": 2048,
                   "training.distributed.strategy": "fsdp", "training.stage2.gradient_accumulation_steps": 16,
                   "evaluation.n_samples": 20},
}


def _get(params: dict, dotted: str):
    for part in dotted.split("."):
        params = params[part]
    return params


def _params(monkeypatch, preset: str, env: str | None, runtime_params: dict | None = None) -> dict:
    monkeypatch.setenv(PRESET_VARIABLE, preset)
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=env, runtime_params=runtime_params) as session:
        return plain_copy(session.load_context().params)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_merge_order_for_every_preset_and_recipe(monkeypatch, preset, recipe):
    params = _params(monkeypatch, preset, recipe)
    for key, value in {**RECIPE_KEYS[recipe], **SCALE_KEYS[preset]}.items():
        assert _get(params, key) == value, key
    assert params["project"]["recipe"] == recipe
    assert params["project"]["experiment"] == recipe
    assert params["training"]["stage2"]["weight_clip_max"] == 5.0  # from base, untouched by both


@pytest.mark.parametrize("preset", PRESETS)
def test_runtime_params_win_over_preset_and_recipe(monkeypatch, preset):
    runtime = {"training": {"stage2": {"beta": 2.0}}, "dataset": {"max_length": 100}}
    params = _params(monkeypatch, preset, "verifiable", runtime)
    assert params["training"]["stage2"]["beta"] == 2.0
    assert params["dataset"]["max_length"] == 100


def test_presets_and_recipes_set_disjoint_keys():
    """A preset that changed a recipe key would fork the recipe per scale: none may."""
    def keys(folder: Path) -> set[str]:
        return set(_leaf_keys(yaml.safe_load((folder / "parameters.yml").read_text())))

    recipe_keys = set().union(*(keys(ROOT / "conf" / r) for r in RECIPES)) - {"project.recipe"}
    for preset in PRESETS:
        overlap = keys(ROOT / "conf" / "presets" / preset) & recipe_keys
        assert not overlap, f"preset {preset} sets recipe keys {sorted(overlap)}"


def test_unknown_preset_names_the_available_ones(monkeypatch):
    with pytest.raises(ValueError, match="WMTP_PRESET='huge'.*available presets: local-light, micro, production, study"):
        _params(monkeypatch, "huge", "verifiable")


def _kedro(*args: str, preset: str) -> subprocess.CompletedProcess:
    env = {**os.environ, PRESET_VARIABLE: preset, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_dry_run_shows_where_each_value_came_from():
    result = _kedro("wmtp", "config", "--env", "verifiable", "--params", "training.log_interval=7",
                    preset="local-light")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["preset"] == "local-light"
    sources = document["value_sources"]
    assert sources["training.stage2.beta"] == "conf/verifiable/parameters.yml"
    assert sources["training.stage2.n_epochs"] == "conf/presets/local-light/parameters.yml"
    assert sources["training.stage2.value_coef"] == "conf/base/parameters.yml"
    assert sources["training.log_interval"] == "runtime (--params)"
    assert document["provenance"]["training"] == [
        "conf/base/parameters.yml",
        "conf/presets/local-light/parameters.yml",
        "conf/verifiable/parameters.yml",
        "runtime (--params)",
    ]
    assert document["parameters"]["training"]["log_interval"] == 7


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only failure")
def test_production_preset_fails_fast_on_this_cpu_machine():
    result = _kedro("wmtp", "config", "--env", "verifiable", preset="production")
    assert result.returncode != 0
    assert "models.policy.path: model directory 'data/06_models/7B_1T_4' does not exist (preset production)" in result.stderr
    assert "needs CUDA GPUs (preset production), but CUDA is not available" in result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.slow
def test_switch_reaches_every_torchrun_rank(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, PRESET_VARIABLE: "local-light", "KEDRO_DISABLE_TELEMETRY": "1"}
    command = [torchrun, "--nproc_per_node", "2", "--master_port", "0", "--log-dir", str(tmp_path),
               "--redirects", "1", "--no-python", str(Path(sys.executable).with_name("kedro")),
               "wmtp", "config", "--env", "rho1", "--pipelines", "data_processing"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = sorted(tmp_path.rglob("stdout.log"))
    assert len(outputs) == 2
    for output in outputs:
        document = yaml.safe_load(output.read_text())
        assert document["preset"] == "local-light"
        assert document["parameters"]["project"]["preset"] == "local-light"
        assert document["parameters"]["training"]["stage2"]["weighting"] == "rho1"
