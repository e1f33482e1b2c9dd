"""The final evaluation of the exported model and the run's metrics report."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from weighted_mtp.config.schema import RunConfig
from weighted_mtp.data import TokenizedDataset, resolve_pad_token_id
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.stages import build_loader
from weighted_mtp.workflow.stages import _floats, training_device

logger = logging.getLogger(__name__)


def evaluate_model(
    model: Any, tokenizer: Any, validation: Sequence[Mapping[str, Any]], config: RunConfig
) -> dict[str, float | None]:
    """Validation metrics of ``model`` under the stage-2 objective.

    Under rho-1 the reference is not reloaded here, so the reported CE is the plain
    (uniform) one; the other recipes get exactly the loop's validation figures. Under
    torchrun each rank evaluates its shard and every rank returns the whole set's figures.
    """
    device = training_device(config)
    dataset = TokenizedDataset(validation, tokenizer, config.dataset.max_length, drop_unlabelled=True)
    loader, _ = build_loader(dataset, config.training.stage2.batch_size, resolve_pad_token_id(tokenizer),
                             seed=config.training.seed, shuffle=False, evaluation=True)
    metrics = evaluate_stage(model.to(device), loader, config, device, "stage2")
    logger.info("Best model: val_loss %.4f, val_mtp_loss %.4f", metrics["val_loss"], metrics["val_mtp_loss"])
    return _floats(metrics)


def metrics_report(
    stage1: Mapping[str, Any], stage2: Mapping[str, Any], best_model: Mapping[str, Any]
) -> dict[str, Any]:
    """One document with each stage's final figures and the exported model's validation."""
    return {"stage1": dict(stage1), "stage2": dict(stage2), "best_model": dict(best_model)}
