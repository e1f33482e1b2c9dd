"""The MLflow backend for the run the Kedro hook started, when there is one."""

from __future__ import annotations

import sys
from typing import Any

from weighted_mtp.tracking.options import is_main_process


def mlflow_backend_for(is_main: bool | None = None) -> Any | None:
    """An :class:`~weighted_mtp.tracking.backend.MlflowBackend` on the active MLflow run.

    None on a non-zero rank or when no run is active (``mlflow.enabled: false``, where the
    hook starts none, or training called from plain Python or tests): the metrics logger
    then simply has no MLflow backend.

    Args:
        is_main: Whether this process may log; default :func:`is_main_process`.
    """
    main = is_main_process() if is_main is None else is_main
    if not main:
        return None
    # No import of mlflow (~3 s) when nothing imported it yet: then no run can be active.
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None else None
    if run is None:
        return None
    from mlflow.tracking import MlflowClient

    from weighted_mtp.tracking.backend import MlflowBackend

    return MlflowBackend(run.info.run_id, MlflowClient(mlflow.get_tracking_uri()))
