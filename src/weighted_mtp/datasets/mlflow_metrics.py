"""Metrics a node returns, logged to the active MLflow run, and nothing at all when tracking is off.

kedro-mlflow's ``MlflowMetricsHistoryDataset`` builds an ``MlflowClient`` before it checks
whether logging is on, and a client for the default ``sqlite:///mlflow.db`` store creates
that database: a run with ``mlflow.enabled: false`` would still leave a store behind. The
class name keeps the ``Mlflow`` prefix because that is how kedro-mlflow's
``switch_catalog_logging`` (used by the project hooks) finds the datasets to switch.
"""

from __future__ import annotations

from typing import Any

from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset


class MlflowMetricsDataset(MlflowMetricsHistoryDataset):
    """``{"name": {"value": v, "step": s}}`` → ``log_metric`` calls, only while logging is on."""

    def _save(self, data: dict[str, Any]) -> None:
        if not self._logging_activated:
            return
        super()._save(data)
