"""Nodes of the stage1 pipeline: the policy model, its warm-up, and stage 1.

Each node takes the parameter blocks it uses (typed by :func:`~weighted_mtp.config.validate_block`),
so any of them runs alone on persisted inputs (``kedro run --nodes train_stage1``).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from weighted_mtp.config import DistributedConfig, PolicyModelConfig, ProjectConfig, TrainingConfig, validate_block
from weighted_mtp.config.recipes import RECIPES
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.models.policy_dir import load_or_create_policy, needs_pretraining, save_pretrained_micro
from weighted_mtp.runtime.distributed import is_distributed
from weighted_mtp.runtime.parallel import is_sharded
from weighted_mtp.runtime.runs import open_run_folder
from weighted_mtp.training.objective import objective_for
from weighted_mtp.training.trainer import Trainer, unsharded

logger = logging.getLogger(__name__)


def load_model(tokenizer: Any, policy: dict, distributed: dict | None = None) -> MetaLlamaMTPAdapter:
    """The policy: a model directory from disk, or the generated micro model; under torchrun
    with ``strategy: fsdp`` loaded straight into shards (rank 0 reads, the others never hold
    the whole model)."""
    settings = validate_block(DistributedConfig, distributed or {}, "training.distributed")
    return load_or_create_policy(validate_block(PolicyModelConfig, policy, "models.policy"), tokenizer,
                                 sharded=settings.strategy == "fsdp" and is_distributed(),
                                 activation_checkpointing=settings.activation_checkpointing)


def pretrain_micro(policy_model: MetaLlamaMTPAdapter, tokenizer: Any, train_records: list, validation_records: list,
                   training: dict, policy: dict, max_length: int) -> MetaLlamaMTPAdapter:
    """Warm up a freshly generated micro model once and save it in its directory (a model
    loaded from disk, or one already warmed up, passes through)."""
    training = validate_block(TrainingConfig, training, "training")
    policy = validate_block(PolicyModelConfig, policy, "models.policy")
    if not needs_pretraining(policy.path):
        logger.info("Pre-training skipped: %s is not a fresh generated micro model", policy.path)
        return policy_model
    if not training.pretrain.enabled:
        logger.info("Pre-training disabled (training.pretrain.enabled: false)")
        return policy_model
    trainer = Trainer(objective_for("pretrain", training), training, policy, max_length=max_length)
    result = trainer.fit(policy_model, tokenizer, train_records, validation_records)
    return save_pretrained_micro(result.model.cpu(), policy.path, result.metrics)


def train_stage1(warm_model: MetaLlamaMTPAdapter, tokenizer: Any, train_records: list, validation_records: list,
                 project: dict, training: dict, policy: dict, max_length: int) -> tuple[MetaLlamaMTPAdapter, dict]:
    """Stage 1 (the critic, or rho-1's reference: a copy of the policy), returned with its
    best-validation weights and the stage's record."""
    project = validate_block(ProjectConfig, project, "project")
    training = validate_block(TrainingConfig, training, "training")
    if not training.stage1.enabled:
        logger.info("Stage 1 skipped (recipe %s: training.stage1.enabled is false)", project.recipe)
        return unsharded(warm_model), {"skipped": True, "recipe": project.recipe}  # the catalog saves it
    model = warm_model
    if RECIPES[project.recipe].needs_reference:  # a copy: a sharded model is gathered into a plain one
        model = unsharded(warm_model) if is_sharded(warm_model) else copy.deepcopy(warm_model)
    trainer = Trainer(objective_for("stage1", training, project.recipe), training,
                      validate_block(PolicyModelConfig, policy, "models.policy"), max_length=max_length,
                      checkpoint_dir=open_run_folder(project.checkpoint_dir, training.keep_runs))
    result = trainer.fit(model, tokenizer, train_records, validation_records, load_best=True)
    return result.model.cpu(), {**result.summary(), "recipe": project.recipe}
