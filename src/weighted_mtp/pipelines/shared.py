"""Nodes shared by several pipelines.

The same node object is placed in every pipeline that needs it, so ``__default__`` (their
sum) holds it once.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.pipeline import Node, node

from weighted_mtp.config import RunConfig, validate_config
from weighted_mtp.config.requirements import check_environment

logger = logging.getLogger(__name__)


def validate_parameters(parameters: dict[str, Any]) -> RunConfig:
    """Fail fast, before any data or model is touched, on invalid merged parameters or on a
    machine that lacks what they need (a model directory, GPUs)."""
    config = validate_config(parameters)
    check_environment(config)
    logger.info(
        "Parameters valid: recipe=%s preset=%s experiment=%s model=%s",
        config.project.recipe,
        config.project.preset,
        config.project.experiment,
        config.models.policy.path,
    )
    return config


validate_config_node: Node = node(
    validate_parameters,
    inputs="parameters",
    outputs="run_config",
    name="validate_config",
    tags=["data", "stage1", "stage2"],
)
