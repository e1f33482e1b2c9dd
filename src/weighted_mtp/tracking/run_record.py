"""What identifies a run: the merged parameters (flattened), tags and the config file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

import weighted_mtp
from weighted_mtp.config.validate import plain_copy

log = logging.getLogger(__name__)

CONFIG_ARTIFACT = "config/parameters.yml"
_PARAMS_PER_REQUEST = 100


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"stage2": {"beta": 0.9}}}`` → ``{"training.stage2.beta": 0.9}``.

    Lists stay one value (``[1, 2]``), so a param's key is always a config key path.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def log_run_record(client: MlflowClient, run_id: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
    """Log the flattened parameters, the tags and ``config/parameters.yml`` once per run.

    Params are sent 100 per request (MLflow's limit) instead of one request each: the
    merged config has ~100 keys, and against a remote server per-key requests cost seconds.
    """
    flat = flatten_params(params)
    entries = [Param(key, _param_text(key, value)) for key, value in sorted(flat.items())]
    for start in range(0, len(entries), _PARAMS_PER_REQUEST):
        client.log_batch(run_id, params=entries[start : start + _PARAMS_PER_REQUEST])
    client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
    client.log_dict(run_id, plain_copy(params), CONFIG_ARTIFACT)


PARENT_RUN_ENV = "WMTP_MLFLOW_PARENT_RUN_ID"
TAGS_ENV = "WMTP_MLFLOW_TAGS"


def run_tags(
    params: Mapping[str, Any], project_path: str | Path, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``recipe``, ``experiment`` (the checkpoint folder), ``git_commit`` and ``git_dirty``.

    A caller that launches runs (``kedro wmtp compare``) groups them under its own run by
    setting ``$WMTP_MLFLOW_PARENT_RUN_ID`` (MLflow's ``mlflow.parentRunId`` tag nests the
    run in the UI) and adds tags with ``$WMTP_MLFLOW_TAGS``, a JSON object.

    The commit is that of the checkout the ``weighted_mtp`` code runs from (an editable
    install: the project itself), else of ``project_path``; it is also set as
    ``mlflow.source.git.commit``, the tag MLflow's UI shows as the run's source version.
    """
    project = params.get("project") or {}
    tags = {"recipe": str(project.get("recipe", "")), "experiment": str(project.get("experiment", ""))}
    commit, dirty = git_state(Path(weighted_mtp.__file__).parent)
    if commit is None:
        commit, dirty = git_state(Path(project_path))
    if commit is not None:
        tags.update({"git_commit": commit, "mlflow.source.git.commit": commit, "git_dirty": str(dirty).lower()})
    env = os.environ if env is None else env
    if env.get(PARENT_RUN_ENV):
        tags["mlflow.parentRunId"] = env[PARENT_RUN_ENV]
    if env.get(TAGS_ENV):
        try:
            extra = json.loads(env[TAGS_ENV])
        except json.JSONDecodeError as error:
            raise ValueError(f"${TAGS_ENV} is not a JSON object: {error}") from None
        if not isinstance(extra, dict):
            raise ValueError(f"${TAGS_ENV} must be a JSON object of tags, got {env[TAGS_ENV]!r}")
        tags.update({str(key): str(value) for key, value in extra.items()})
    return tags


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """``(HEAD commit, tracked files modified)`` of the repository at ``path``, or
    ``(None, None)`` outside a git checkout or without git."""
    try:
        commit = _git(path, "rev-parse", "HEAD")
        dirty = bool(_git(path, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def parameter_count(model: Any) -> int | None:
    """Number of parameters of a torch module (duck-typed), else None."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    try:
        return int(sum(p.numel() for p in parameters()))
    except (TypeError, AttributeError):
        return None


def _git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def _param_text(key: str, value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_VAL_LENGTH:
        log.warning("MLflow param %s is %d characters; keeping the first %d (the whole value is "
                    "in %s).", key, len(text), MAX_PARAM_VAL_LENGTH, CONFIG_ARTIFACT)
        return text[:MAX_PARAM_VAL_LENGTH]
    return text
