"""Nodes of the stage2 pipeline: stage 2, the best model's export, its validation and reports.

Each node takes the parameter blocks it uses (typed by :func:`~weighted_mtp.config.validate_block`),
so ``kedro run --pipelines stage2 --from-nodes train_stage2`` needs only persisted inputs.
"""

from __future__ import annotations

import logging
from typing import Any

from matplotlib.figure import Figure

from weighted_mtp.config import ModelsConfig, PolicyModelConfig, ProjectConfig, TrainingConfig, validate_block
from weighted_mtp.data import TokenizedDataset, resolve_pad_token_id
from weighted_mtp.datasets import ModelBundle
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.reporting import token_weight_report
from weighted_mtp.runtime.device import resolve_device
from weighted_mtp.runtime.results import plain_floats
from weighted_mtp.runtime.runs import open_run_folder
from weighted_mtp.tracking.artifacts import token_weight_histogram
from weighted_mtp.training.checkpoint import load_checkpoint
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.objective import objective_for
from weighted_mtp.training.trainer import Trainer, build_loader

logger = logging.getLogger(__name__)


def train_stage2(stage1_model: MetaLlamaMTPAdapter, tokenizer: Any, train_records: list, validation_records: list,
                 project: dict, training: dict, models: dict, max_length: int) -> tuple[MetaLlamaMTPAdapter, dict]:
    """Stage 2 from the persisted stage-1 model; under rho-1 that model is the reference
    (unless ``models.reference.path`` names one) and the policy is reloaded from its path."""
    project = validate_block(ProjectConfig, project, "project")
    training = validate_block(TrainingConfig, training, "training")
    models = validate_block(ModelsConfig, models, "models")
    policy, reference = stage1_model, None
    if training.stage2.weighting == "rho1":
        reference = (MetaLlamaMTPAdapter.from_pretrained(models.reference.path, device="cpu")
                     if models.reference.path else stage1_model).to(resolve_device(models.policy.device))
        policy = MetaLlamaMTPAdapter.from_pretrained(models.policy.path, device="cpu",
                                                     value_head=models.policy.value_head)
    trainer = Trainer(objective_for("stage2", training, project.recipe), training, models.policy,
                      max_length=max_length, checkpoint_dir=open_run_folder(project.checkpoint_dir, training.keep_runs),
                      reference=reference)
    result = trainer.fit(policy, tokenizer, train_records, validation_records)
    return result.model.cpu(), {**result.summary(), "recipe": project.recipe}


def save_best(stage2_model: MetaLlamaMTPAdapter, stage2_summary: dict, tokenizer: Any) -> ModelBundle:
    """Export the best stage-2 weights as a model directory, tokenizer included; refuses a
    checkpoint that another run wrote (the summary names the run it belongs to)."""
    best = stage2_summary.get("best_checkpoint")
    if best:
        payload = load_checkpoint(best)
        expected, found = stage2_summary.get("run_id"), payload.get("run_id")
        if expected and found != expected:
            raise ValueError(f"{best} was written by run {found}, not by run {expected} whose stage-2 "
                             "summary names it; another run replaced it. Rerun stage 2 (kedro run "
                             "--pipelines stage2) to export this run's own best model.")
        stage2_model.load_state_dict(payload["model"])
        logger.info("Exporting the best stage-2 weights from %s", best)
    else:
        logger.warning("No best stage-2 checkpoint was written; exporting the final weights")
    return ModelBundle(adapter=stage2_model, tokenizer=tokenizer)


def evaluate(best_model: MetaLlamaMTPAdapter, tokenizer: Any, validation_records: list, training: dict,
             policy: dict, max_length: int) -> dict[str, float | None]:
    """Validation metrics of the exported best model under the stage-2 objective.

    Under rho-1 the reference is not reloaded here, so the reported CE is the plain
    (uniform) one; the other recipes get exactly the stage's validation figures. Under
    torchrun each rank evaluates its shard and every rank returns the whole set's figures.
    """
    training = validate_block(TrainingConfig, training, "training")
    device = resolve_device(validate_block(PolicyModelConfig, policy, "models.policy").device)
    dataset = TokenizedDataset(validation_records, tokenizer, max_length, drop_unlabelled=True)
    loader, _ = build_loader(dataset, training.stage2.batch_size, resolve_pad_token_id(tokenizer),
                             seed=training.seed, shuffle=False, evaluation=True)
    metrics = evaluate_stage(best_model.to(device), loader, objective_for("stage2", training), device)
    logger.info("Best model: val_loss %.4f, val_mtp_loss %.4f", metrics["val_loss"], metrics["val_mtp_loss"])
    return plain_floats(metrics)


def report_metrics(stage1_metrics: dict, stage2_summary: dict, best_model_metrics: dict) -> dict[str, Any]:
    """``{"stage1": ..., "stage2": ..., "best_model": ...}`` for data/08_reporting/metrics.json."""
    return {"stage1": dict(stage1_metrics), "stage2": dict(stage2_summary), "best_model": dict(best_model_metrics)}


def report_token_weights(best_model: MetaLlamaMTPAdapter, tokenizer: Any, validation_records: list, project: dict,
                         training: dict, policy: dict, max_length: int) -> tuple[str, dict[str, Figure]]:
    """Which tokens the critic weighted: an HTML page and value plots of a few validation
    solutions, weighted with the stage-2 settings by the exported model's value head."""
    project = validate_block(ProjectConfig, project, "project")
    return token_weight_report(best_model, tokenizer, validation_records,
                               validate_block(TrainingConfig, training, "training"),
                               device=validate_block(PolicyModelConfig, policy, "models.policy").device,
                               max_length=max_length,
                               heading=f"Token weights: {project.experiment} (recipe {project.recipe})")


def plot_token_weight_histogram(stage2_model: MetaLlamaMTPAdapter, tokenizer: Any, validation_records: list,
                                training: dict, policy: dict, max_length: int) -> Figure:
    """The histogram of the TD weights the final stage-2 model gives validation tokens
    (a figure saying so for recipes without TD weights)."""
    return token_weight_histogram(stage2_model, tokenizer, validation_records,
                                  validate_block(TrainingConfig, training, "training"),
                                  device=validate_block(PolicyModelConfig, policy, "models.policy").device,
                                  max_length=max_length)
