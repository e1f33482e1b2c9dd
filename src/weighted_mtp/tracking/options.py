"""What the ``mlflow`` parameters and the environment ask the tracking to do.

Kept apart from the validated ``RunConfig`` because the Kedro hook needs these few values
before any node runs (the experiment must exist before the run starts), from parameters
that may not be valid yet; validation still reports bad values when the first node runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weighted_mtp.runtime.distributed import is_main_process

DEFAULT_EXPERIMENT_PREFIX = "weighted-mtp"
RUN_NAME_ENV = "WMTP_MLFLOW_RUN_NAME"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"  # MLflow's own variable


@dataclass(frozen=True)
class TrackingOptions:
    """The resolved tracking choices of one Kedro run.

    Attributes:
        enabled: ``mlflow.enabled`` and this process is the main rank.
        experiment_name: ``mlflow.experiment_name``, else ``$MLFLOW_EXPERIMENT_NAME``, else
            ``weighted-mtp/<project.recipe>``.
        run_name: ``mlflow.run_name``, else ``$WMTP_MLFLOW_RUN_NAME``; None lets the hook
            name the run ``<recipe>/<pipelines>``.
        recipe: ``project.recipe``.
        log_checkpoints: ``none``, ``best`` or ``all``.
        log_model: Log the best model as an MLflow model.
        register_as: Register that model under this name, or None.
    """

    enabled: bool
    experiment_name: str
    run_name: str | None
    recipe: str
    log_checkpoints: str = "none"
    log_model: bool = True
    register_as: str | None = None


def tracking_options(
    params: Mapping[str, Any], env: Mapping[str, str] | None = None, is_main: bool | None = None
) -> TrackingOptions:
    """Read the tracking choices from the merged parameters and the environment.

    Args:
        params: The merged Kedro parameters (``context.params``, ``--params`` included).
        env: Environment variables (``os.environ`` by default).
        is_main: Whether this process may talk to MLflow; default :func:`is_main_process`.

    Values are not checked here (``validate_config`` reports every problem at once, and
    the hook runs it before a run is started).
    """
    env = os.environ if env is None else env
    block = params.get("mlflow") or {}
    recipe = str((params.get("project") or {}).get("recipe", "default"))
    policy = str(block.get("log_checkpoints", "none"))
    main = is_main_process(env) if is_main is None else is_main
    return TrackingOptions(
        enabled=bool(block.get("enabled", True)) and main,
        experiment_name=(block.get("experiment_name") or env.get(EXPERIMENT_ENV)
                         or f"{DEFAULT_EXPERIMENT_PREFIX}/{recipe}"),
        run_name=block.get("run_name") or env.get(RUN_NAME_ENV) or None,
        recipe=recipe,
        log_checkpoints=policy,
        log_model=bool(block.get("log_model", True)),
        register_as=block.get("register_as") or None,
    )
