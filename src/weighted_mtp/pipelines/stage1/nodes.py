"""Nodes of the stage1 pipeline: unpack the config, call :mod:`weighted_mtp.workflow`."""

from __future__ import annotations

from typing import Any

from weighted_mtp.config import RunConfig, validate_config
from weighted_mtp.workflow.model_setup import load_or_create_policy
from weighted_mtp.workflow.stages import pretrain_if_needed, train_stage1_step


def load_model(tokenizer: Any, run_config: RunConfig) -> Any:
    """The policy: a model directory from disk, or the generated micro model."""
    return load_or_create_policy(run_config, tokenizer)


def pretrain_micro(
    policy_model: Any, tokenizer: Any, train_records: list, validation_records: list, run_config: RunConfig
) -> Any:
    """Warm up a freshly generated micro model once (skipped for models loaded from disk)."""
    return pretrain_if_needed(policy_model, tokenizer, train_records, validation_records, run_config)


def train_stage1(
    warm_model: Any, tokenizer: Any, train_records: list, validation_records: list, parameters: dict
) -> tuple[Any, dict[str, Any]]:
    """Stage 1; reads ``parameters`` itself so the node can be a resume point."""
    return train_stage1_step(warm_model, tokenizer, train_records, validation_records, validate_config(parameters))
