"""Nodes of the stage2 pipeline. Each reads ``parameters`` itself, so
``kedro run --pipelines stage2 --from-nodes train_stage2`` needs only persisted inputs."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from weighted_mtp.config import validate_config
from weighted_mtp.datasets import ModelBundle
from weighted_mtp.reporting import token_weight_report
from weighted_mtp.tracking.artifacts import token_weight_histogram
from weighted_mtp.workflow.reporting import evaluate_model, metrics_report
from weighted_mtp.workflow.stages import best_model_from_summary, train_stage2_step


def train_stage2(
    stage1_model: Any, tokenizer: Any, train_records: list, validation_records: list, parameters: dict
) -> tuple[Any, dict[str, Any]]:
    """Stage 2 from the persisted stage-1 model."""
    return train_stage2_step(stage1_model, tokenizer, train_records, validation_records, validate_config(parameters))


def save_best(stage2_model: Any, stage2_summary: dict, tokenizer: Any) -> ModelBundle:
    """Export the best stage-2 weights as a model directory, tokenizer included."""
    return ModelBundle(adapter=best_model_from_summary(stage2_model, stage2_summary), tokenizer=tokenizer)


def evaluate(best_model: Any, tokenizer: Any, validation_records: list, parameters: dict) -> dict[str, Any]:
    """Validation metrics of the exported best model (the stage-2 objective)."""
    return evaluate_model(best_model, tokenizer, validation_records, validate_config(parameters))


def report_metrics(stage1_metrics: dict, stage2_summary: dict, best_model_metrics: dict) -> dict[str, Any]:
    """``{"stage1": ..., "stage2": ..., "best_model": ...}`` for data/08_reporting/metrics.json."""
    return metrics_report(stage1_metrics, stage2_summary, best_model_metrics)


def report_token_weights(
    best_model: Any, tokenizer: Any, validation_records: list, parameters: dict
) -> tuple[str, dict[str, Figure]]:
    """Which tokens the critic weighted: an HTML page and value plots of a few validation
    solutions, weighted with the stage-2 settings by the exported model's value head."""
    return token_weight_report(best_model, tokenizer, validation_records, validate_config(parameters))


def plot_token_weight_histogram(stage2_model: Any, tokenizer: Any, validation_records: list,
                                parameters: dict) -> Figure:
    """The histogram of the TD weights the final stage-2 model gives validation tokens
    (a figure saying so for recipes without TD weights)."""
    return token_weight_histogram(stage2_model, tokenizer, validation_records, validate_config(parameters))
