"""Public entry points of the training stages: setup, train, save.

Each ``run_*`` reads as one story: choose what trains, build the data, then hand the
shared loop (:mod:`~weighted_mtp.training.loop`) an objective, an optimizer and a
schedule. Recipes (docs/TRAINING.md):

============  ==========================================  ==========================================
recipe        stage 1 (:func:`run_stage1`)                 stage 2 (:func:`run_stage2`)
============  ==========================================  ==========================================
baseline      skipped by the caller                        uniform MTP CE on correct rows
verifiable    value head on all rows, trunk frozen         TD-weighted MTP CE on correct rows
                                                           + value_coef · value loss on all rows
rho1          a copy of the policy (the reference) tuned   MTP CE on the top k_percent tokens by
              with MTP CE on correct rows                  excess loss over the reference
============  ==========================================  ==========================================

The adapter is trained **in place** and returned in :class:`StageResult`; the weights it
holds are those of the last step — the best checkpoint is *not* reloaded (load
``result.best_checkpoint`` with :func:`~weighted_mtp.training.checkpoint.load_checkpoint`
when you want them). Parameters' ``requires_grad`` flags are left as the stage set them.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from weighted_mtp.config.recipes import recipe_of
from weighted_mtp.data import MTPCollator, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.data.diff import mark_first_errors
from weighted_mtp.runtime.distributed import get_rank, get_world_size, is_distributed, is_main_process
from weighted_mtp.runtime.parallel import prepare_model
from weighted_mtp.training.loop import LoopSettings, StageRun, plan_steps, prefix_train, run_loop
from weighted_mtp.training.metrics_logger import ConsoleBackend, MetricsLogger
from weighted_mtp.training.sampler import ResumableSampler
from weighted_mtp.training.schedule import build_optimizer, build_scheduler
from weighted_mtp.training.seeding import seed_everything
from weighted_mtp.training.steps import Objective, objective_for, trainable_parameters
from weighted_mtp.value_weighting import TDStatsEMA

log = logging.getLogger(__name__)

_CHECKPOINT_STAGE = re.compile(r"^checkpoint_(pretrain|stage1|stage2)_")


@dataclass
class StageResult:
    """What a stage returns.

    Attributes:
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        adapter: The trained model with its last-step weights (best weights are NOT
            reloaded). For stage 1 of rho-1 this is the reference model, a copy.
        metrics: Final figures, unprefixed: ``train/loss``, ``train/head{k}_loss``, ``lr``,
            ``grad_norm``, ``epoch``, ``weights/...`` and ``val_loss``, ``val_mtp_loss``, ...
        history: Every logged row of the stage (``{"step": n, ...}``, same keys as
            ``metrics``), including those before a resume.
        best_checkpoint: ``checkpoint_{stage}_best.pt`` when one was written.
        final_checkpoint: ``checkpoint_{stage}_final.pt``, or the ``step_{n}`` checkpoint
            of a run cut short by ``stop_after_steps``; None without a checkpoint dir.
        best_metric: Best value of ``training.monitor`` (None if never finite).
        global_step: Optimizer steps taken in this stage.
        total_steps: Steps the stage was planned for.
        completed: False when ``stop_after_steps`` stopped the run before the end.
    """

    stage: str
    adapter: nn.Module
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_checkpoint: Path | None
    final_checkpoint: Path | None
    best_metric: float | None
    global_step: int = 0
    total_steps: int = 0
    completed: bool = True


def run_pretrain(
    adapter: nn.Module,
    tokenizer: Any,
    train_records: Sequence[Mapping[str, Any]],
    val_records: Sequence[Mapping[str, Any]],
    config: Any,
    logger: MetricsLogger | None,
    device: torch.device,
    checkpoint_dir: str | Path | None = None,
    *,
    resume_from: str | Path | None = None,
    stop_after_steps: int | None = None,
    progress: bool | None = None,
) -> StageResult:
    """Warm up a randomly initialised micro model: uniform MTP CE on every record.

    Trains trunk and heads (not the value head) with ``training.pretrain``; without a
    ``checkpoint_dir`` no checkpoint is written.

    Args:
        adapter: The policy (trained in place).
        tokenizer: Its tokenizer.
        train_records: Alpaca records to train on.
        val_records: Alpaca records to validate on (non-empty).
        config: The ``RunConfig``.
        logger: The metrics logger (None: console only).
        device: Where ``adapter`` lives.
        checkpoint_dir: Where checkpoints go (optional for pretraining).
        resume_from: A pretrain checkpoint to resume (default ``training.resume_from``
            when it is a pretrain checkpoint).
        stop_after_steps: Stop after this global step, saving ``checkpoint_pretrain_step_{n}.pt``.
        progress: Force the progress bar on/off (default: on a TTY).

    Returns:
        The :class:`StageResult`.
    """
    set_trainable(adapter, trunk=True, heads=True, value_head=False)
    data = _datasets(tokenizer, train_records, val_records, config, "pretrain", only_correct=False)
    return _train_stage(
        "pretrain", adapter, objective_for("pretrain", config), config.training.pretrain, data,
        config, logger, device, checkpoint_dir,
        options=_Options(resume_from, stop_after_steps, progress),
    )


def run_stage1(
    adapter: nn.Module,
    tokenizer: Any,
    train_records: Sequence[Mapping[str, Any]],
    val_records: Sequence[Mapping[str, Any]],
    config: Any,
    logger: MetricsLogger | None,
    device: torch.device,
    checkpoint_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    stop_after_steps: int | None = None,
    progress: bool | None = None,
) -> StageResult:
    """Stage 1: the critic (verifiable) or the reference model (rho1).

    - verifiable (any recipe but rho1): the value head learns to predict correctness on
      ``train_on`` rows (correct and incorrect by default) with ``training.stage1.loss``;
      heads are frozen, the trunk too unless ``freeze_trunk: false``. ``adapter`` trains
      in place.
    - rho1: a deep copy of ``adapter`` (the reference) trains trunk and heads with MTP CE
      on correct rows; ``adapter`` itself is untouched and the result holds the copy.

    Args: as :func:`run_pretrain`; ``checkpoint_dir`` is required.

    Returns:
        The :class:`StageResult` (``adapter`` = the critic-trained policy or the reference).
    """
    rho1 = recipe_of(config).needs_reference
    cfg = config.training.stage1
    if rho1:
        model = copy.deepcopy(adapter)
        set_trainable(model, trunk=True, heads=True, value_head=False)
    else:
        model = adapter
        set_trainable(model, trunk=not cfg.freeze_trunk, heads=False, value_head=True)
    data = _datasets(tokenizer, train_records, val_records, config, "stage1", only_correct=rho1)
    return _train_stage(
        "stage1", model, objective_for("stage1", config), cfg, data, config, logger, device,
        checkpoint_dir, options=_Options(resume_from, stop_after_steps, progress),
    )


def run_stage2(
    adapter: nn.Module,
    tokenizer: Any,
    train_records: Sequence[Mapping[str, Any]],
    val_records: Sequence[Mapping[str, Any]],
    config: Any,
    logger: MetricsLogger | None,
    device: torch.device,
    checkpoint_dir: str | Path,
    reference: nn.Module | None = None,
    *,
    resume_from: str | Path | None = None,
    stop_after_steps: int | None = None,
    progress: bool | None = None,
) -> StageResult:
    """Stage 2: weighted MTP fine-tuning of the policy, with the value loss alongside.

    Weighting (``training.stage2.weighting``): ``uniform`` w = 1; ``td`` TD weights from
    the current (detached) value head, optionally with EMA whitening statistics; ``rho1``
    1 on the top ``k_percent`` tokens by excess loss over ``reference``, per head. The CE
    covers ``train_on`` rows (correct by default: other rows get label -100, so they leave
    the CE and the weights' whitening statistics); the value loss covers every row and is
    trained when
    ``value_coef`` > 0. Every row is iterated, so all recipes take the same number of
    steps on the same batches.

    Args:
        adapter: The policy (trained in place, value head included).
        reference: Frozen reference model, required for ``weighting: rho1`` (stage 1's
            result under recipe rho1, or a model loaded from ``models.reference.path``).
        Others: as :func:`run_stage1`.

    Returns:
        The :class:`StageResult`.

    Raises:
        ValueError: ``weighting: rho1`` without a reference.
    """
    cfg = config.training.stage2
    if cfg.weighting == "rho1":
        _freeze_reference(reference)
    set_trainable(adapter, trunk=True, heads=True, value_head=cfg.value_coef > 0)
    ema = None
    if cfg.weighting == "td" and cfg.td_ema.enabled:
        ema = TDStatsEMA(cfg.td_ema.momentum, cfg.td_ema.warmup_steps)
    data = _datasets(tokenizer, train_records, val_records, config, "stage2", only_correct=False)
    return _train_stage(
        "stage2", adapter, objective_for("stage2", config), cfg, data, config, logger, device,
        checkpoint_dir, reference=reference if cfg.weighting == "rho1" else None, ema=ema,
        options=_Options(resume_from, stop_after_steps, progress),
    )


def set_trainable(model: nn.Module, *, trunk: bool, heads: bool, value_head: bool) -> int:
    """Set ``requires_grad`` per part (trunk, heads incl. norm/output, value head).

    Frozen parameters get no gradient and no optimizer state, so a frozen-trunk stage 1
    costs only the value head's memory.

    Returns:
        The number of trainable parameter elements.

    Raises:
        ValueError: When nothing would train.
    """
    model.requires_grad_(False)
    parts = ((trunk, model.trunk_parameters), (heads, model.head_parameters),
             (value_head, model.value_head_parameters))
    for enabled, parameters in parts:
        if enabled:
            for param in parameters():
                param.requires_grad_(True)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count == 0:
        raise ValueError("set_trainable: no parameter left trainable.")
    return count


def _freeze_reference(reference: nn.Module | None) -> None:
    if reference is None:
        raise ValueError(
            "training.stage2.weighting is 'rho1' but no reference model was given: pass "
            "reference= (run_stage1's result under recipe rho1, or a model loaded from "
            "models.reference.path)."
        )
    reference.requires_grad_(False)
    reference.eval()


@dataclass(frozen=True)
class _Options:
    resume_from: str | Path | None = None
    stop_after_steps: int | None = None
    progress: bool | None = None


@dataclass(frozen=True)
class _StageData:
    train: TokenizedDataset
    val: TokenizedDataset
    pad_token_id: int


def _datasets(
    tokenizer: Any,
    train_records: Sequence[Mapping[str, Any]],
    val_records: Sequence[Mapping[str, Any]],
    config: Any,
    stage: str,
    only_correct: bool,
) -> _StageData:
    """Encode the splits once; rows without any labelled token are dropped."""
    max_length = config.dataset.max_length
    datasets = tuple(
        TokenizedDataset(records, tokenizer, max_length, only_correct=only_correct, drop_unlabelled=True)
        for records in (train_records, val_records)
    )
    stage_config = getattr(config.training, stage, None)
    if getattr(stage_config, "value_target", "outcome") == "first_error":
        for name, dataset in zip(("training", "validation"), datasets):
            marked = mark_first_errors(dataset.rows)
            log.info("[%s] first-error value targets: %d of %d incorrect %s rows have a bug "
                        "position (a correct row of the same problem to diff against)", stage, marked,
                        sum(not row["is_correct"] for row in dataset.rows), name)
    for name, dataset in zip(("training", "validation"), datasets):
        if len(dataset) == 0:
            what = "correct " if only_correct else ""
            raise ValueError(f"{stage}: no {what}{name} rows with a labelled token; check the "
                             f"{name} records and dataset.max_length ({max_length}).")
    return _StageData(datasets[0], datasets[1], resolve_pad_token_id(tokenizer))


def build_loader(
    dataset: TokenizedDataset,
    batch_size: int,
    pad_token_id: int,
    *,
    seed: int,
    shuffle: bool,
    num_workers: int = 0,
    evaluation: bool = False,
    shard: bool = True,
) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader over ``dataset`` with a seeded, resumable, rank-aware sampler.

    Args:
        dataset: The encoded rows.
        batch_size: Rows per micro-batch on each rank.
        pad_token_id: Padding id of the collator.
        seed: Base seed of the per-epoch order.
        shuffle: Draw a new order every epoch (training).
        num_workers: DataLoader worker processes.
        evaluation: Validation: every row once, no padding rows added to even out shards.
        shard: False gives every rank all rows (a report computed on one rank).
    """
    rank, world_size = (get_rank(), get_world_size()) if shard and is_distributed() else (0, 1)
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle, rank=rank,
                               world_size=world_size, pad=not evaluation)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                        collate_fn=MTPCollator(pad_token_id), num_workers=num_workers)
    return loader, sampler


def _train_stage(
    stage: str,
    model: nn.Module,
    objective: Objective,
    section: Any,
    data: _StageData,
    config: Any,
    logger: MetricsLogger | None,
    device: torch.device,
    checkpoint_dir: str | Path | None,
    *,
    options: _Options,
    reference: nn.Module | None = None,
    ema: Any | None = None,
) -> StageResult:
    """Seed, build loaders/optimizer/schedule, run the loop, package the result."""
    training = config.training
    seed_everything(training.seed)
    logger = logger if logger is not None else MetricsLogger([ConsoleBackend()])
    run = _build_run(stage, model, objective, section, data, config, logger, device, reference, ema)
    settings = _settings(stage, section, training, checkpoint_dir, options, run)
    logger.log_params({
        f"{stage}/total_steps": run.plan.total_steps,
        f"{stage}/steps_per_epoch": run.plan.steps_per_epoch,
        f"{stage}/train_rows": len(data.train),
        f"{stage}/val_rows": len(data.val),
        f"{stage}/trainable_parameters": sum(p.numel() for _, p in trainable_parameters(model)),
    })
    log.info("[%s] %d step(s) (%d per epoch, n_epochs %s), %d training rows, %d validation rows.",
             stage, run.plan.total_steps, run.plan.steps_per_epoch, section.n_epochs,
             len(data.train), len(data.val))
    try:
        state, tracker = run_loop(run, settings)
    finally:
        logger.close()  # the stage's end: backends flush (MLflow sends what it queued), also on error
    return StageResult(
        stage=stage, adapter=model, metrics={**prefix_train(state.last_train), **state.last_val},
        history=state.history, best_checkpoint=state.best_checkpoint,
        final_checkpoint=state.checkpoint, best_metric=tracker.best,
        global_step=state.global_step, total_steps=run.plan.total_steps, completed=state.completed,
    )


def _build_run(
    stage: str, model: nn.Module, objective: Objective, section: Any, data: _StageData,
    config: Any, logger: MetricsLogger, device: torch.device,
    reference: nn.Module | None, ema: Any | None,
) -> StageRun:
    """Loaders, step plan, optimizer and scheduler of one stage.

    Under torchrun the model is first made data-parallel (rank 0's weights everywhere, or
    FSDP shards), so the optimizer is built over what each rank actually trains.
    """
    training = config.training
    model = prepare_model(model, training.distributed.strategy, device, config.models.policy.dtype)
    train_loader, sampler = build_loader(data.train, section.batch_size, data.pad_token_id,
                                         seed=training.seed, shuffle=True,
                                         num_workers=training.num_workers)
    val_loader, _ = build_loader(data.val, section.batch_size, data.pad_token_id,
                                 seed=training.seed, shuffle=False, num_workers=training.num_workers,
                                 evaluation=True)
    accumulation = getattr(section, "gradient_accumulation_steps", 1)
    plan = plan_steps(math.ceil(sampler.num_samples / section.batch_size), accumulation, section.n_epochs)
    optimizer = build_optimizer(trainable_parameters(model), section.learning_rate,
                                getattr(section, "weight_decay", 0.0))
    scheduler = build_scheduler(optimizer, plan.total_steps, section.warmup_ratio)
    return StageRun(model=model, objective=objective, optimizer=optimizer, scheduler=scheduler,
                    train_loader=train_loader, sampler=sampler, val_loader=val_loader, config=config,
                    device=device, logger=logger, plan=plan, reference=reference, ema=ema)


def _settings(
    stage: str, section: Any, training: Any, checkpoint_dir: str | Path | None, options: _Options,
    run: StageRun,
) -> LoopSettings:
    """Loop settings from the ``training`` block, the stage section and the call options."""
    return LoopSettings(
        stage=stage,
        max_grad_norm=getattr(section, "max_grad_norm", 1.0),
        log_interval=training.log_interval,
        eval_interval=training.eval_interval,
        save_checkpoint_every=training.save_checkpoint_every,
        monitor=training.monitor,
        patience=training.patience,
        early_stopping=training.early_stopping,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        resume_from=_resume_path(stage, options.resume_from, training.resume_from),
        stop_after_steps=options.stop_after_steps,
        progress=options.progress,
        is_main=is_main_process(),
    )


def _resume_path(stage: str, explicit: str | Path | None, configured: str | None) -> Path | None:
    """The checkpoint to resume: the explicit one, else ``training.resume_from`` unless its
    file name (``checkpoint_{stage}_...``) says it belongs to another stage, so one
    ``resume_from`` can point a multi-stage pipeline at the stage it was interrupted in."""
    if explicit is not None:
        return Path(explicit)
    if not configured:
        return None
    match = _CHECKPOINT_STAGE.match(Path(configured).name)
    if match and match.group(1) != stage:
        log.info("[%s] training.resume_from %s belongs to %s; %s starts fresh.", stage,
                 configured, match.group(1), stage)
        return None
    return Path(configured)
