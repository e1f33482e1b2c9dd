"""Every validation rule, with the key path in its message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from project_runs import merge

from weighted_mtp.config import validate_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def params() -> dict:
    raw = yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())
    # resolve the ${globals:...} interpolations the way Kedro would, with plain values
    raw["project"]["experiment"] = "default"
    raw["project"]["checkpoint_dir"] = "data/06_models/checkpoints/default"
    raw["models"]["policy"]["path"] = "data/06_models/micro-mtp"
    for key in ("raw", "train", "validation", "tokenizer"):
        raw["dataset"][key] = f"data/{key}.jsonl"
    raw["mlflow"]["experiment_name"] = "weighted-mtp/verifiable"
    return raw


def _problems(params: dict) -> list[str]:
    with pytest.raises(ValueError) as excinfo:
        validate_config(params)
    return str(excinfo.value).splitlines()[1:]


def test_base_parameters_are_valid(params):
    config = validate_config(params)
    assert config.training.stage2.beta == 0.9
    assert config.training.stage2.value_coef == 0.5
    assert config.training.stage2.td_ema.momentum == 0.99
    assert config.raw == params


@pytest.mark.parametrize("section", ["project", "models", "dataset", "training", "mlflow"])
def test_missing_section(params, section):
    del params[section]
    assert any(line.strip() == f"- {section}: required section is missing" for line in _problems(params))


@pytest.mark.parametrize(
    "path",
    ["models.policy.name", "models.policy.path", "dataset.train", "dataset.validation"],
)
def test_missing_required_field(params, path):
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node[part]
    del node[leaf]
    assert any(f"{path}: required key is missing" in line for line in _problems(params))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("training.stage1.n_epochs", 0, "must be > 0"),
        ("training.stage2.n_epochs", -1.5, "must be > 0"),
        ("training.stage1.learning_rate", 0.0, "must be > 0"),
        ("training.stage2.learning_rate", -1e-5, "must be > 0"),
        ("training.stage2.beta", 0, "must be > 0"),
        ("training.stage2.weight_clip_min", 0.0, "must be > 0"),
        ("training.stage2.value_coef", -0.1, "must be >= 0"),
        ("training.log_interval", 0, "must be > 0"),
        ("training.eval_interval", -5, "must be > 0"),
        ("training.save_checkpoint_every", 0, "must be > 0"),
        ("dataset.validation_fraction", 1.0, "must be in (0, 1)"),
        ("training.stage2.k_percent", 1.5, "must be in (0, 1]"),
    ],
)
def test_ranges(params, path, value, message):
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    assert any(line.strip().startswith(f"- {path}: {message}") for line in _problems(params))


def test_interval_must_be_an_integer(params):
    params["training"]["log_interval"] = 2.5
    assert any("training.log_interval: expected int, found 2.5" in line for line in _problems(params))


def test_clip_min_above_max(params):
    params["training"]["stage2"]["weight_clip_min"] = 6.0
    lines = _problems(params)
    assert any("training.stage2.weight_clip_min: must be <= training.stage2.weight_clip_max" in l for l in lines)


@pytest.mark.parametrize(
    ("stage", "typo", "suggestion"),
    [("stage2", "betta", "beta"), ("stage2", "value_coeff", "value_coef"), ("stage1", "learning_rat", "learning_rate")],
)
def test_unknown_stage_key_suggests(params, stage, typo, suggestion):
    params["training"][stage][typo] = 1.0
    lines = _problems(params)
    assert any(f"training.{stage}.{typo}: unknown key (did you mean '{suggestion}'?)" in l for l in lines)


def test_unknown_choice(params):
    params["training"]["stage2"]["weighting"] = "td-lambda"
    assert any("training.stage2.weighting: must be one of td, uniform, rho1" in l for l in _problems(params))


def test_every_problem_reported_at_once(params):
    bad = copy.deepcopy(params)
    bad["training"]["stage2"]["beta"] = -1
    bad["training"]["stage1"]["n_epochs"] = 0
    bad["training"]["stage2"]["typo_key"] = 1
    lines = _problems(bad)
    assert len(lines) == 3
    assert "3 problem(s)" in str(pytest.raises(ValueError, validate_config, bad).value)


@pytest.mark.parametrize("recipe, overrides, key", [
    ("verifiable", {"training": {"stage2": {"weighting": "rho1"}}}, "training.stage2.weighting"),
    ("baseline", {"training": {"stage1": {"enabled": True}}}, "training.stage1.enabled"),
    ("baseline", {"training": {"stage2": {"value_coef": 0.5}}}, "training.stage2.value_coef"),
    ("next_token", {"training": {"stage2": {"loss_heads": None}}}, "training.stage2.loss_heads"),
    ("rho1", {"training": {"stage1": {"enabled": False}}}, "training.stage1.enabled"),
])
def test_a_config_that_contradicts_its_recipe_is_an_error(params, recipe, overrides, key):
    params = _recipe_params(params, recipe, overrides)
    with pytest.raises(ValueError, match=rf"{key}: .*recipe {recipe}"):
        validate_config(params)


@pytest.mark.parametrize("recipe", ["baseline", "verifiable", "rho1", "next_token"])
def test_every_shipped_recipe_agrees_with_its_table_row(params, recipe):
    from weighted_mtp.config.recipes import RECIPES

    config = validate_config(_recipe_params(params, recipe, {}))
    assert config.training.stage2.weighting == RECIPES[recipe].weighting


def _recipe_params(base: dict, recipe: str, overrides: dict) -> dict:
    """conf/base merged with conf/<recipe>/parameters.yml (as Kedro's soft merge does), then ``overrides``."""
    layer = yaml.safe_load((ROOT / "conf" / recipe / "parameters.yml").read_text()) or {}
    return merge(merge(base, layer), overrides)
