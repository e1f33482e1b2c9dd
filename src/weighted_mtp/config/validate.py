"""Validation of the merged parameters: every problem reported at once, with its key path.

A run that dies after twenty minutes because of a typo in ``conf/verifiable`` is the failure
this module exists to prevent. The rules are the pydantic models of
:mod:`weighted_mtp.config.schema`; this module turns pydantic's errors into one
``ValueError`` a person can act on: one line per problem, keyed by dotted path, an unknown
key with a "did you mean", a range as an interval, and (given the sources) the conf file
that set the key.

Pydantic checks a model's rules (``model_validator``) only when its fields parse, so a
cross-field or recipe problem shows up once the field errors are fixed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from weighted_mtp.config.schema import DatasetConfig, RunConfig

Model = TypeVar("Model", bound=BaseModel)

_TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
               "list_type": "list", "model_type": "a mapping", "dict_type": "a mapping"}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def validate_config(params: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> RunConfig:
    """Check the merged parameters and build the frozen run config.

    Args:
        params: The merged Kedro parameters (``context.params``).
        sources: Optional ``{"training.stage2.beta": "conf/verifiable/parameters.yml"}``
            (:func:`weighted_mtp.config_loader.parameter_sources`): each problem then names
            the file that set its key.

    Returns:
        The validated :class:`~weighted_mtp.config.schema.RunConfig`; ``config.raw`` is a
        plain copy of ``params``.

    Raises:
        ValueError: Listing every problem found, one per line, each with its key path.
    """
    plain = plain_copy(params)
    return validate_block(RunConfig, plain, "", sources).with_raw(plain)


def validate_block(model_cls: type[Model], block: Any, path: str,
                   sources: Mapping[str, str] | None = None) -> Model:
    """One params block (``params:training``) as ``model_cls``, for the nodes that take it.

    Args:
        model_cls: The block's model (:class:`~weighted_mtp.config.schema.TrainingConfig`).
        block: The block's parameters.
        path: The block's key path (``"training"``; ``""`` for the whole config), which
            prefixes every problem.
        sources: As for :func:`validate_config`.

    Raises:
        ValueError: Listing every problem, each with its full key path.
    """
    try:
        return model_cls.model_validate(plain_copy(block))
    except ValidationError as error:
        problems = [p for e in error.errors() for p in _problems(model_cls, e, path)]
    lines = "\n".join(f"  - {key}: {message}{_source_note(key, message, sources)}" for key, message in problems)
    raise ValueError(f"Invalid parameters ({len(problems)} problem(s)):\n{lines}")


def validate_dataset(block: Mapping[str, Any]) -> DatasetConfig:
    """The ``dataset`` block alone (``params:dataset``), for the nodes that need only it."""
    return validate_block(DatasetConfig, block, "dataset")


def _problems(root: type[BaseModel], error: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    """``(key path, message)`` pairs for one pydantic error (a rule may report several)."""
    loc = [str(part) for part in error["loc"]]
    base = ".".join(part for part in (path, *loc) if part)
    key, kind, found = base or "parameters", error["type"], error.get("input")
    parent = _model_at(root, loc[:-1])
    field = parent.model_fields.get(loc[-1]) if parent and loc else None
    if kind == "value_error":  # a model's rule: "key: message" lines relative to the model
        return [(_join(base, line.partition(": ")[0]), line.partition(": ")[2])
                for line in str(error["ctx"]["error"]).splitlines()]
    if kind == "missing":
        return [(key, f"required {'section' if _model_type(field) else 'key'} is missing")]
    if kind == "extra_forbidden":
        return [(key, _unknown_key_message(loc[-1], list(parent.model_fields) if parent else []))]
    if kind in _TYPE_NAMES:
        return [(key, f"expected {_TYPE_NAMES[kind]}, found {found!r}")]
    if kind.startswith(("greater_than", "less_than")):
        return [(key, f"{_range_text(field, error.get('ctx', {}))}, found {found!r}")]
    if kind == "literal_error" and field is not None:
        return [(key, f"must be one of {', '.join(map(str, get_args(field.annotation)))}, found {found!r}")]
    if kind == "string_too_short":
        return [(key, "must not be empty")]
    if kind == "finite_number":
        return [(key, f"must be a finite number, found {found!r}")]
    return [(key, f"{error['msg']}, found {found!r}")]


def _model_at(root: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    """The model at key path ``loc`` below ``root`` (None inside a list or a plain field)."""
    model: type[BaseModel] | None = root
    for part in loc:
        model = _model_type(model.model_fields.get(part)) if model else None
    return model


def _model_type(field: FieldInfo | None) -> type[BaseModel] | None:
    annotation = field.annotation if field else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _range_text(field: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    """``must be > 0`` or, for a field bounded on both sides, ``must be in (0, 1]``."""
    bounds = {name: getattr(m, name) for m in (field.metadata if field else ()) for name in _BOUNDS
              if hasattr(m, name)} or dict(ctx)
    low = next(((name, bounds[name]) for name in ("gt", "ge") if name in bounds), None)
    high = next(((name, bounds[name]) for name in ("lt", "le") if name in bounds), None)
    if low and high:
        return f"must be in {'(' if low[0] == 'gt' else '['}{low[1]}, {high[1]}{')' if high[0] == 'lt' else ']'}"
    name, value = low or high
    return f"must be {_BOUNDS[name]} {value}"


def _unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key{hint}; allowed keys: {', '.join(sorted(allowed))}"


def _source_note(key: str, message: str, sources: Mapping[str, str] | None) -> str:
    """`` (set in <file>)`` for the nearest key at or above ``key`` that a file set."""
    if not sources or message.startswith("required"):
        return ""  # a missing key was set nowhere
    while key:
        if key in sources:
            return f" (set in {sources[key]})"
        key = key.rpartition(".")[0]
    return ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def plain_copy(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (OmegaConf containers become builtins)."""
    if isinstance(value, Mapping):
        return {str(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain_copy(v) for v in value]
    return value
