"""Nodes shared by several pipelines.

The same node object is placed in every pipeline that needs it, so ``__default__`` (their
sum) holds it once.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.pipeline import Node, node

from weighted_mtp.config import RunConfig, validate_config

logger = logging.getLogger(__name__)


def validate_parameters(parameters: dict[str, Any]) -> RunConfig:
    """Fail fast, before any data or model is touched, on invalid merged parameters."""
    config = validate_config(parameters)
    logger.info(
        "Parameters valid: recipe=%s experiment=%s model=%s",
        config.project.recipe,
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
