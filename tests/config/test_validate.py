"""Every validation rule, with the key path in its message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from project_runs import merge

from weighted_mtp.config import Stage2Config, TrainingConfig, validate_block, validate_config
from weighted_mtp.config_loader import RUNTIME_SOURCE, parameter_sources

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
    assert "  - training.stage2.weight_clip_min: must be <= weight_clip_max, found 6.0 > 5.0" in lines


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


def test_a_string_is_not_a_bool(params):
    params["training"]["early_stopping"] = "false"
    assert "  - training.early_stopping: expected bool, found 'false'" in _problems(params)


def test_a_bool_is_not_an_int_but_an_int_is_a_float(params):
    params["training"]["log_interval"] = True
    assert "  - training.log_interval: expected int, found True" in _problems(params)
    params["training"]["log_interval"] = 10
    params["training"]["stage2"]["beta"] = 2
    beta = validate_config(params).training.stage2.beta
    assert beta == 2.0 and isinstance(beta, float)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_float_must_be_finite(params, value):
    params["training"]["stage2"]["initial_value"] = value  # a key without a range
    assert f"  - training.stage2.initial_value: must be a finite number, found {value!r}" in _problems(params)


def test_evaluation_k_is_a_list_of_ints_within_n_samples(params):
    params["evaluation"]["k"] = [1, 2.5]
    assert "  - evaluation.k.1: expected int, found 2.5" in _problems(params)
    params["evaluation"]["k"] = [1, 20]
    assert any(line.startswith("  - evaluation.k: every k must be in [1, n_samples=") for line in _problems(params))


def test_raw_is_not_a_key_nor_a_field(params):
    config = validate_config(params)
    assert "raw" not in config.model_dump()
    assert config == validate_config({**params, "evaluation": {}})  # defaults spelled out or not
    params["raw"] = {}
    assert any(line.startswith("  - raw: unknown key") for line in _problems(params))


def test_each_problem_names_the_file_that_set_its_key(params, monkeypatch):
    monkeypatch.delenv("WMTP_PRESET", raising=False)  # the micro preset layer
    runtime = {"training": {"stage2": {"weight_clip_max": 0.05}}, "evaluation": {"top_p": 0}}
    merged = merge(_recipe_params(params, "verifiable", {}), runtime)
    del merged["dataset"]["train"]
    sources = parameter_sources(ROOT / "conf", "verifiable", runtime)
    with pytest.raises(ValueError) as excinfo:
        validate_config(merged, sources)
    assert str(excinfo.value).splitlines()[1:] == [
        "  - dataset.train: required key is missing",
        "  - training.stage2.weight_clip_min: must be <= weight_clip_max, found 0.1 > 0.05 "
        "(set in conf/base/parameters.yml)",
        f"  - evaluation.top_p: must be in (0, 1], found 0 (set in {RUNTIME_SOURCE})",
    ]


def test_validate_block_prefixes_the_block_path():
    with pytest.raises(ValueError) as excinfo:
        validate_block(TrainingConfig, {"stage2": {"beta": -1.0, "betta": 1.0}}, "training")
    assert str(excinfo.value).splitlines() == [
        "Invalid parameters (2 problem(s)):",
        "  - training.stage2.beta: must be > 0, found -1.0",
        "  - training.stage2.betta: unknown key (did you mean 'beta'?); allowed keys: " + ", ".join(
            sorted(Stage2Config.model_fields)),
    ]
    assert validate_block(TrainingConfig, {"log_interval": 3}, "training").stage2.beta == 0.9


@pytest.mark.parametrize("monitor", ["val_value_auroc", "val_tokens", "val_los", "loss"])
def test_monitor_must_be_a_validation_loss(params, monitor):
    params["training"]["monitor"] = monitor
    assert (f"  - training.monitor: must be a validation loss (the best checkpoint keeps the lowest): "
            f"val_loss, val_mtp_loss, val_weighted_mtp_loss, val_value_loss or val_head<k>_loss, "
            f"found {monitor!r}") in _problems(params)


@pytest.mark.parametrize("recipe, monitor, overrides", [
    ("verifiable", "val_loss", {}),
    ("verifiable", "val_value_loss", {"training": {"pretrain": {"enabled": False}}}),
    ("verifiable", "val_mtp_loss", {"training": {"stage1": {"enabled": False}}}),
    ("baseline", "val_head3_loss", {}),
    ("rho1", "val_weighted_mtp_loss", {}),
    ("next_token", "val_head0_loss", {}),
])
def test_a_monitor_every_stage_reports_is_valid(params, recipe, monitor, overrides):
    params = _recipe_params(params, recipe, merge({"training": {"monitor": monitor}}, overrides))
    assert validate_config(params).training.monitor == monitor


@pytest.mark.parametrize("recipe, monitor, overrides, expected", [
    ("verifiable", "val_mtp_loss", {},
     "training.monitor: stage 1 (the critic) of recipe verifiable reports no val_mtp_loss (only val_loss, "
     "val_value_loss) and the monitor serves every stage; monitor val_loss, or set training.stage1.enabled: false"),
    ("verifiable", "val_head1_loss", {}, "training.monitor: stage 1 (the critic) of recipe verifiable reports no "
     "val_head1_loss"),
    ("verifiable", "val_value_loss", {}, "training.monitor: pretrain of recipe verifiable reports no val_value_loss "
     "(only val_loss, val_mtp_loss, val_weighted_mtp_loss, val_head<k>_loss) and the monitor serves every stage; "
     "monitor val_loss, or set training.pretrain.enabled: false"),
    ("rho1", "val_value_loss", {"training": {"pretrain": {"enabled": False}}},
     "training.monitor: stage 1 (the reference) of recipe rho1 reports no val_value_loss"),
    ("baseline", "val_head4_loss", {}, "training.monitor: val_head4_loss needs head 4, the micro model has heads "
     "0..3 (models.policy.micro.n_future_tokens)"),
    ("next_token", "val_head1_loss", {}, "training.monitor: stage 2 computes the CE of heads 0..0 only "
     "(training.stage2.loss_heads: 1), so it reports no val_head1_loss; monitor val_loss"),
])
def test_a_monitor_some_stage_lacks_is_an_error_naming_both_keys(params, recipe, monitor, overrides, expected):
    params = _recipe_params(params, recipe, merge({"training": {"monitor": monitor}}, overrides))
    assert any(line.startswith(f"  - {expected}") for line in _problems(params)), _problems(params)


@pytest.mark.parametrize("recipe", ["baseline", "verifiable", "rho1", "next_token"])
def test_the_monitor_rule_follows_the_figures_each_stage_reports(params, recipe):
    """A monitor validates iff every stage the recipe runs reports it (training/sums.py)."""
    from weighted_mtp.config.recipes import MONITORS
    from weighted_mtp.training.objective import objective_for
    from weighted_mtp.training.sums import LossSums, summarize

    config = validate_config(_recipe_params(params, recipe, {}))
    stages = ["pretrain"] + (["stage1"] if config.training.stage1.enabled else []) + ["stage2"]
    reported = []
    for stage in stages:
        objective = objective_for(stage, config.training, recipe)
        sums = LossSums(4)
        for k in range(objective.n_loss_heads(4) if objective.train_ce else 0):
            sums.add_head(k, 2.0, 2.0, 1)  # the heads accumulate_batch computes
        sums.add("value_count", 1)
        reported.append({f"val_{key}" for key in summarize(sums, objective)})
    for monitor in [*MONITORS, *(f"val_head{k}_loss" for k in range(4))]:
        candidate = _recipe_params(params, recipe, {"training": {"monitor": monitor}})
        everywhere = all(monitor in figures for figures in reported)
        try:
            validate_config(candidate)
            valid = True
        except ValueError:
            valid = False
        assert valid == everywhere, (recipe, monitor)


@pytest.mark.parametrize("micro, expected", [
    ({"dim": 130}, "models.policy.micro.dim: must be divisible by n_heads, found 130 / 4"),
    ({"dim": 12, "n_heads": 4, "n_kv_heads": 1},
     "models.policy.micro.dim: dim / n_heads (the head width) must be even for RoPE, found 12 / 4 = 3"),
    ({"n_kv_heads": 3}, "models.policy.micro.n_kv_heads: must divide n_heads (each key/value head serves a "
     "group of query heads), found 4 / 3"),
    ({"n_kv_heads": 0}, "models.policy.micro.n_kv_heads: must be > 0, found 0"),
])
def test_micro_model_shapes_must_fit_together(params, micro, expected):
    params["models"]["policy"]["micro"].update(micro)
    assert f"  - {expected}" in _problems(params)


def test_micro_model_shape_rules_are_the_model_args_rules(params):
    """Every micro block the config accepts builds a model (models/args.py agrees)."""
    from weighted_mtp.models.args import ModelArgs

    for dim, n_heads, n_kv_heads in [(128, 4, 2), (96, 4, None), (64, 8, 8), (48, 3, 1)]:
        params["models"]["policy"]["micro"].update(dim=dim, n_heads=n_heads, n_kv_heads=n_kv_heads)
        micro = validate_config(params).models.policy.micro
        ModelArgs(dim=micro.dim, n_layers=micro.n_layers, n_heads=micro.n_heads, n_kv_heads=micro.n_kv_heads,
                  n_future_tokens=micro.n_future_tokens, vocab_size=300)


@pytest.mark.parametrize("experiment", ["../x", "a/b", "..", ".hidden", "", "a\\b", "bad name", "x/../../y"])
def test_experiment_must_be_a_plain_folder_name(params, experiment):
    params["project"]["experiment"] = experiment
    assert any(line.startswith(f"  - project.experiment: must be a plain folder name ([A-Za-z0-9._-], not "
                               f"starting with '.', so no '..'), found {experiment!r}") for line in _problems(params))


@pytest.mark.parametrize("experiment", ["default", "compare-study-verifiable-seed0", "critic-micro-v1.2", "_x"])
def test_plain_folder_names_are_valid_experiments(params, experiment):
    params["project"]["experiment"] = experiment
    assert validate_config(params).project.experiment == experiment


@pytest.mark.parametrize("run_name, valid", [
    ("beta-2", True), ("verifiable/seed0", True), ("tuned beta 1.2", True), (None, True),
    ("", False), ("  ", False), ("two\nlines", False),
])
def test_run_name_is_one_line_of_text(params, run_name, valid):
    params["mlflow"]["run_name"] = run_name
    if valid:
        assert validate_config(params).mlflow.run_name == run_name
    else:
        assert any(line.startswith(f"  - mlflow.run_name: must be one line of printable text (null: the default "
                                   f"name), found {run_name!r}") for line in _problems(params))
