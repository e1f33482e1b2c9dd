"""Validation of the merged parameters: every problem reported at once, with its key path.

A run that dies after twenty minutes because of a typo in ``conf/verifiable`` is the failure
this module exists to prevent. Structure (required sections and fields, unknown keys, types)
is checked against the dataclasses in :mod:`weighted_mtp.config.schema`; ranges and choices
are a table below.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Callable, Mapping, Union

from weighted_mtp.config import schema
from weighted_mtp.config.recipes import RECIPES, recipe_contradictions

CHOICES: dict[str, tuple[str, ...]] = {
    "project.recipe": tuple(RECIPES),
    "models.policy.dtype": ("float32", "bfloat16", "float16"),
    "models.policy.value_head": ("linear", "mlp", "block"),
    "mlflow.log_checkpoints": ("best", "all", "none"),
    "training.stage1.loss": ("mse", "huber"),
    "training.stage1.train_on": ("all", "correct"),
    "training.stage1.value_target": ("outcome", "first_error"),
    "training.stage2.value_target": ("outcome", "first_error"),
    "training.stage2.weighting": ("td", "uniform", "rho1"),
    "training.stage2.value_loss": ("mse", "huber"),
    "training.stage2.train_on": ("all", "correct"),
    "training.distributed.strategy": ("ddp", "fsdp"),
    "training.distributed.backend": ("auto", "nccl", "gloo"),
}


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _unit_open(value: float) -> bool:
    return 0 < value < 1


def _unit_half_open(value: float) -> bool:
    return 0 <= value < 1


def _unit_closed_above(value: float) -> bool:
    return 0 < value <= 1


def _unit_closed(value: float) -> bool:
    return 0 <= value <= 1


_RULE_TEXT: dict[Callable[[float], bool], str] = {
    _positive: "must be > 0",
    _non_negative: "must be >= 0",
    _unit_open: "must be in (0, 1)",
    _unit_half_open: "must be in [0, 1)",
    _unit_closed_above: "must be in (0, 1]",
    _unit_closed: "must be in [0, 1]",
}

_STAGE_RANGES: dict[str, Callable[[float], bool]] = {
    "n_epochs": _positive,
    "learning_rate": _positive,
    "batch_size": _positive,
    "gradient_accumulation_steps": _positive,
    "warmup_ratio": _unit_half_open,
    "weight_decay": _non_negative,
    "max_grad_norm": _positive,
    "huber_delta": _positive,
}

RANGES: dict[str, Callable[[float], bool]] = {
    **{f"training.stage1.{k}": rule for k, rule in _STAGE_RANGES.items()},
    **{f"training.stage2.{k}": rule for k, rule in _STAGE_RANGES.items() if k != "huber_delta"},
    **{f"training.pretrain.{k}": rule for k, rule in _STAGE_RANGES.items()
       if k in ("n_epochs", "learning_rate", "batch_size", "warmup_ratio")},
    "training.log_interval": _positive,
    "training.eval_interval": _positive,
    "training.save_checkpoint_every": _positive,
    "training.patience": _positive,
    "training.num_workers": _non_negative,
    "training.distributed.timeout_minutes": _positive,
    "training.stage2.beta": _positive,
    "training.stage2.gamma": _unit_closed_above,
    "training.stage2.td_lambda": _unit_closed,
    "training.stage2.value_coef": _non_negative,
    "training.stage2.weight_clip_min": _positive,
    "training.stage2.weight_clip_max": _positive,
    "training.stage2.k_percent": _unit_closed_above,
    "training.stage2.loss_heads": _positive,
    "training.stage2.td_ema.momentum": _unit_half_open,
    "training.stage2.td_ema.warmup_steps": _non_negative,
    "dataset.max_length": _positive,
    "dataset.validation_fraction": _unit_open,
    "dataset.test_fraction": _unit_open,
    "dataset.max_solutions_per_problem": _positive,
    "dataset.tokenizer_vocab_size": _positive,
    "models.policy.micro.dim": _positive,
    "models.policy.micro.n_layers": _positive,
    "models.policy.micro.n_heads": _positive,
    "models.policy.micro.n_future_tokens": _positive,
    "models.policy.micro.max_seq_len": _positive,
    "execution.workers": _positive,
    "execution.limits.time_s": _positive,
    "execution.limits.memory_mb": _positive,
    "execution.limits.output_bytes": _positive,
    "evaluation.n_samples": _non_negative,
    "evaluation.temperature": _non_negative,
    "evaluation.top_p": _unit_closed_above,
    "evaluation.top_k": _non_negative,
    "evaluation.max_new_tokens": _positive,
    "evaluation.batch_size": _positive,
    "evaluation.train_sample": _non_negative,
    "evaluation.bootstrap_resamples": _positive,
}


def validate_config(params: Mapping[str, Any]) -> schema.RunConfig:
    """Check the merged parameters and build the frozen run config.

    Args:
        params: The merged Kedro parameters (``context.params``).

    Returns:
        The validated :class:`~weighted_mtp.config.schema.RunConfig`.

    Raises:
        ValueError: Listing every problem found, one per line, each with its key path.
    """
    errors: list[str] = []
    if not isinstance(params, Mapping):
        raise ValueError(f"parameters: expected a mapping, found {type(params).__name__}")
    built = _build(schema.RunConfig, params, "", errors, skip=("raw",))
    if built is not None:
        _check_values(built, errors)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ValueError(f"Invalid parameters ({len(errors)} problem(s)):\n{lines}")
    return dataclasses.replace(built, raw=plain_copy(params))


def validate_dataset(block: Mapping[str, Any]) -> schema.DatasetConfig:
    """The ``dataset`` block alone (``params:dataset``), for the nodes that need only it:
    structure, types, choices and ranges of ``dataset.*`` keys.

    Raises:
        ValueError: Listing every problem, each with its ``dataset.`` key path.
    """
    errors: list[str] = []
    built = _build(schema.DatasetConfig, block, "dataset", errors)
    if built is not None:
        _check_ranges(lambda path: getattr(built, path.split(".", 1)[1]), "dataset.", errors)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ValueError(f"Invalid parameters ({len(errors)} problem(s)):\n{lines}")
    return built


def _build(cls: type, data: Any, path: str, errors: list[str], skip: tuple[str, ...] = ()) -> Any:
    """Recursively turn a mapping into ``cls``, collecting errors instead of raising."""
    if not isinstance(data, Mapping):
        errors.append(f"{path or 'parameters'}: expected a mapping, found {data!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    for key in data:
        if key not in fields:
            errors.append(_unknown_key_message(_join(path, key), key, fields))
    kwargs: dict[str, Any] = {}
    for name, fld in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                what = "section" if not path else "key"
                errors.append(f"{key_path}: required {what} is missing")
            continue
        kwargs[name] = _coerce(hints[name], data[name], key_path, errors)
    if any(value is None and dataclasses.is_dataclass(hints[name]) for name, value in kwargs.items()):
        return None  # a nested section was not a mapping; already reported
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # a required key was missing; already reported


def _coerce(hint: Any, value: Any, path: str, errors: list[str]) -> Any:
    """Check ``value`` against a type hint, turning nested mappings into dataclasses."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, errors)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is list:
        ok = isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig"
        value = list(value) if ok else value
    else:
        ok = True
    if not ok:
        errors.append(f"{path}: expected {getattr(hint, '__name__', hint)}, found {value!r}")
    return value


def _check_ranges(value_of: Callable[[str], Any], prefix: str, errors: list[str]) -> None:
    """Apply the range table to the keys under ``prefix`` (all of them for "")."""
    for path, rule in RANGES.items():
        if not path.startswith(prefix):
            continue
        value = value_of(path)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # a type error, already reported
        if not math.isfinite(value) or not rule(value):
            errors.append(f"{path}: {_RULE_TEXT[rule]}, found {value!r}")


def _check_values(config: schema.RunConfig, errors: list[str]) -> None:
    """Apply the choice and range tables, then the rules that relate two keys."""
    for path, choices in CHOICES.items():
        value = _lookup(config, path)
        if value not in choices:
            errors.append(f"{path}: must be one of {', '.join(choices)}, found {value!r}")
    _check_ranges(lambda path: _lookup(config, path), "", errors)
    stage2 = config.training.stage2
    if _numbers(stage2.weight_clip_min, stage2.weight_clip_max) and stage2.weight_clip_min > stage2.weight_clip_max:
        errors.append(
            "training.stage2.weight_clip_min: must be <= training.stage2.weight_clip_max, "
            f"found {stage2.weight_clip_min} > {stage2.weight_clip_max}"
        )
    micro = config.models.policy.micro
    if _numbers(micro.n_future_tokens, micro.n_layers) and micro.n_future_tokens > micro.n_layers:
        errors.append(
            "models.policy.micro.n_future_tokens: must be <= models.policy.micro.n_layers, "
            f"found {micro.n_future_tokens} > {micro.n_layers}"
        )
    _check_evaluation(config.evaluation, errors)
    errors.extend(recipe_contradictions(config))
    for key in ("models.policy.name", "models.policy.path", "dataset.train", "dataset.validation"):
        if not _lookup(config, key):
            errors.append(f"{key}: must not be empty")


def _check_evaluation(evaluation: schema.EvaluationConfig, errors: list[str]) -> None:
    """Rules of the evaluation block that tie keys together (k against n_samples)."""
    k_values = evaluation.k
    if not isinstance(k_values, list) or not all(_numbers(k) and int(k) == k for k in k_values):
        errors.append(f"evaluation.k: expected a list of integers, found {k_values!r}")
        return
    n_samples = evaluation.n_samples
    if not _numbers(n_samples):
        return
    for k in k_values:
        if k < 1 or k > n_samples:
            errors.append(f"evaluation.k: every k must be in [1, evaluation.n_samples={n_samples}], "
                          f"found {k}")
    if n_samples > 0 and _numbers(evaluation.temperature) and evaluation.temperature == 0:
        errors.append("evaluation.temperature: must be > 0 when evaluation.n_samples > 0 "
                      "(temperature 0 gives n identical samples; the greedy line is always reported)")
    if evaluation.max_problems is not None and (not _numbers(evaluation.max_problems) or evaluation.max_problems < 1):
        errors.append(f"evaluation.max_problems: must be null or >= 1, found {evaluation.max_problems!r}")


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _unknown_key_message(path: str, key: str, fields: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{path}: unknown key{hint}; allowed keys: {', '.join(sorted(fields))}"


def _lookup(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def plain_copy(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (OmegaConf containers become builtins)."""
    if isinstance(value, Mapping):
        return {str(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_copy(v) for v in value]
    return value


def validate_block(model_cls: type, block: Mapping[str, Any], path: str) -> Any:
    """One params block (``params:training`` …) as its config type (temporary: replaced by
    the pydantic models)."""
    errors: list[str] = []
    built = _build(model_cls, block, path, errors)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ValueError(f"Invalid parameters ({len(errors)} problem(s)):\n{lines}")
    return built
