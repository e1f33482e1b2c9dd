"""The stage steps the Kedro nodes call, Kedro-free: device placement, recipe choices,
best-weight reloading and the summaries that go to the catalog.

Nodes stay wiring; what happens between "the config says X" and "the loop runs" lives here,
where it can be tested without a Kedro session.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from weighted_mtp.config.schema import RunConfig
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.runtime.device import resolve_device
from weighted_mtp.runtime.distributed import barrier, is_distributed, is_main_process
from weighted_mtp.runtime.parallel import is_sharded, model_state
from weighted_mtp.tracking.attach import mlflow_backend_for
from weighted_mtp.training.checkpoint import load_checkpoint
from weighted_mtp.training.metrics_logger import ConsoleBackend, HistoryBackend, MetricsLogger
from weighted_mtp.training.stages import StageResult, run_pretrain, run_stage1, run_stage2
from weighted_mtp.workflow.model_setup import needs_pretraining, read_marker, write_marker

logger = logging.getLogger(__name__)

Records = Sequence[Mapping[str, Any]]


def build_metrics_logger(config: RunConfig) -> MetricsLogger:
    """The one metrics logger the loops call: console + in-memory history, plus MLflow when
    a run is active (the Kedro hook started one; rank 0 only). The stage closes it, which
    flushes what the MLflow thread still holds."""
    backends: list[Any] = [ConsoleBackend(), HistoryBackend()]
    tracking = mlflow_backend_for(config)
    if tracking is not None:
        backends.append(tracking)
    return MetricsLogger(backends, is_main=is_main_process())


def training_device(config: RunConfig) -> torch.device:
    """The device of this rank (under NCCL ``auto``/``cuda`` is the rank's own GPU)."""
    return resolve_device(config.models.policy.device)


def place(model: nn.Module, config: RunConfig, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` for training, except under FSDP, which moves only each
    rank's shards there (a whole 7B model in fp32 need never sit on one GPU)."""
    if config.training.distributed.strategy == "fsdp" and is_distributed():
        return model
    return model.to(device)


def unsharded(model: nn.Module) -> nn.Module:
    """A plain CPU copy of an FSDP-sharded model (every rank must call it then: the shards
    are gathered), so later nodes can save, reload and evaluate it; else ``model``."""
    if not is_sharded(model):
        return model
    state = model_state(model)
    with torch.device("meta"):
        plain = MetaLlamaMTPAdapter(model.args, value_head=model.value_head.kind)
    plain.load_state_dict(state, strict=True, assign=True)
    plain.transformer.refresh_rope_buffer()
    plain.model_name = model.model_name
    return plain


def pretrain_if_needed(
    adapter: MetaLlamaMTPAdapter, tokenizer: Any, train: Records, validation: Records, config: RunConfig
) -> MetaLlamaMTPAdapter:
    """Warm up a freshly generated micro model once, then persist it in its directory."""
    path = Path(config.models.policy.path)
    if not needs_pretraining(path):
        logger.info("Pre-training skipped: %s is not a fresh generated micro model", path)
        return adapter
    if not config.training.pretrain.enabled:
        logger.info("Pre-training disabled (training.pretrain.enabled: false)")
        return adapter
    device = training_device(config)
    result = run_pretrain(place(adapter, config, device), tokenizer, train, validation, config,
                          build_metrics_logger(config), device)
    model = unsharded(result.adapter).cpu()
    if is_main_process():  # one writer; the others wait until the directory is complete
        marker = read_marker(path)  # save_pretrained replaces the directory: keep the marker's content
        model.save_pretrained(path)
        write_marker(path, {**marker, "pretrained": True, "pretrain_metrics": _floats(result.metrics)})
        logger.info("Pre-trained micro model saved to %s (val_loss %.4f)", path,
                    result.metrics.get("val_loss", float("nan")))
    barrier()
    return model


def train_stage1_step(
    adapter: MetaLlamaMTPAdapter, tokenizer: Any, train: Records, validation: Records, config: RunConfig
) -> tuple[MetaLlamaMTPAdapter, dict[str, Any]]:
    """Stage 1 (critic or rho-1 reference), returning the best-validation weights."""
    if not config.training.stage1.enabled:
        logger.info("Stage 1 skipped (recipe %s: training.stage1.enabled is false)", config.project.recipe)
        return adapter, {"skipped": True, "recipe": config.project.recipe}
    device = training_device(config)
    result = run_stage1(place(adapter, config, device), tokenizer, train, validation, config,
                        build_metrics_logger(config), device, config.project.checkpoint_dir)
    result.adapter = unsharded(result.adapter)
    model = load_best_weights(result).cpu()
    return model, summarize(result, config)


def train_stage2_step(
    stage1_model: MetaLlamaMTPAdapter, tokenizer: Any, train: Records, validation: Records, config: RunConfig
) -> tuple[MetaLlamaMTPAdapter, dict[str, Any]]:
    """Stage 2; under rho-1 the stage-1 model is the reference and the policy is reloaded."""
    device = training_device(config)
    reference = None
    policy = stage1_model
    if config.training.stage2.weighting == "rho1":
        reference = _reference_model(stage1_model, config).to(device)
        policy = MetaLlamaMTPAdapter.from_pretrained(
            config.models.policy.path, device="cpu", value_head=config.models.policy.value_head
        )
    result = run_stage2(place(policy, config, device), tokenizer, train, validation, config,
                        build_metrics_logger(config), device, config.project.checkpoint_dir,
                        reference=reference)
    return unsharded(result.adapter).cpu(), summarize(result, config)


def load_best_weights(result: StageResult) -> nn.Module:
    """Put the best checkpoint's weights into the stage's model (last-step weights otherwise)."""
    if result.best_checkpoint is None:
        return result.adapter
    payload = load_checkpoint(result.best_checkpoint)
    result.adapter.load_state_dict(payload["model"])
    logger.info("Loaded the best %s weights from %s (step %d)", result.stage, result.best_checkpoint, payload["global_step"])
    return result.adapter


def best_model_from_summary(model: MetaLlamaMTPAdapter, summary: Mapping[str, Any]) -> MetaLlamaMTPAdapter:
    """The stage-2 model with its best checkpoint's weights, ready to export."""
    best = summary.get("best_checkpoint")
    if best:
        model.load_state_dict(load_checkpoint(best)["model"])
        logger.info("Exporting the best stage-2 weights from %s", best)
    else:
        logger.warning("No best stage-2 checkpoint was written; exporting the final weights")
    return model


def summarize(result: StageResult, config: RunConfig) -> dict[str, Any]:
    """A JSON-friendly record of a stage, persisted by the catalog."""
    return {
        "skipped": False,
        "stage": result.stage,
        "recipe": config.project.recipe,
        "metrics": _floats(result.metrics),
        "best_metric": result.best_metric,
        "monitor": config.training.monitor,
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "final_checkpoint": str(result.final_checkpoint) if result.final_checkpoint else None,
        "global_step": result.global_step,
        "total_steps": result.total_steps,
    }


def _reference_model(stage1_model: MetaLlamaMTPAdapter, config: RunConfig) -> MetaLlamaMTPAdapter:
    path = config.models.reference.path
    if path:
        return MetaLlamaMTPAdapter.from_pretrained(path, device="cpu")
    if not config.training.stage1.enabled:
        raise ValueError(
            "training.stage2.weighting is rho1 but there is no reference model: enable "
            "training.stage1 (it tunes the reference) or set models.reference.path"
        )
    return stage1_model


def _floats(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats for JSON; NaN becomes None (JSON has no NaN)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        number = float(value)
        out[key] = None if number != number else number
    return out
