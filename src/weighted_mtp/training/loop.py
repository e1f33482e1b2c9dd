"""The training loop shared by every stage.

One global step = one optimizer update over ``gradient_accumulation_steps`` micro-batches.
``n_epochs`` may be fractional: the stage runs ``max(1, int(n_epochs · steps_per_epoch))``
steps, and the global step runs on across epoch boundaries. After each step:

- log the step's figures when ``global_step % log_interval == 0`` and at the last step;
- evaluate when ``global_step % eval_interval == 0``, when an epoch ends, and at the end;
  save ``checkpoint_{stage}_best.pt`` only when the monitored metric improved;
- at the end of every ``save_checkpoint_every``-th epoch save ``checkpoint_{stage}_epoch_{e}.pt``;
- at the end save ``checkpoint_{stage}_final.pt``.

Resume restores model, optimizer, scheduler, EMA, RNG, best-so-far and the position in
the data: each epoch's order comes from a generator seeded with ``seed + epoch`` and the
sampler skips the micro-batches already consumed, so the remaining steps see exactly the
batches of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from weighted_mtp.runtime.distributed import barrier
from weighted_mtp.runtime.parallel import model_state, optimizer_state
from weighted_mtp.training.best_tracker import BestTracker
from weighted_mtp.training.checkpoint import (
    checkpoint_path,
    config_to_dict,
    load_checkpoint,
    report_config_changes,
    restore_training_state,
    save_checkpoint,
)
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.metrics_logger import MetricsLogger, stage_label
from weighted_mtp.training.progress import make_progress
from weighted_mtp.training.sampler import ResumableSampler
from weighted_mtp.training.seeding import capture_rng_state, restore_rng_state
from weighted_mtp.training.steps import Objective, train_step

log = logging.getLogger(__name__)

# Keys whose change between a checkpoint and the resuming run is expected, not reported.
_RESUME_EXPECTED_CHANGES = ("training.resume_from",)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a stage runs.

    Attributes:
        micro_batches_per_epoch: ``ceil(rows / batch_size)`` on this rank.
        accumulation: Micro-batches per optimizer step.
        steps_per_epoch: ``micro_batches_per_epoch // accumulation`` (a remainder of fewer
            than ``accumulation`` micro-batches at an epoch's end is not used).
        total_steps: ``max(1, int(n_epochs · steps_per_epoch))``.
    """

    micro_batches_per_epoch: int
    accumulation: int
    steps_per_epoch: int
    total_steps: int


def plan_steps(micro_batches_per_epoch: int, accumulation: int, n_epochs: float) -> StepPlan:
    """Turn (possibly fractional) epochs into optimizer steps.

    Raises:
        ValueError: When an epoch has fewer micro-batches than one accumulation needs.
    """
    if micro_batches_per_epoch < accumulation:
        raise ValueError(
            f"An epoch has {micro_batches_per_epoch} micro-batch(es) but "
            f"gradient_accumulation_steps is {accumulation}: lower gradient_accumulation_steps "
            "or batch_size, or add data."
        )
    steps_per_epoch = micro_batches_per_epoch // accumulation
    total = max(1, int(n_epochs * steps_per_epoch))
    return StepPlan(micro_batches_per_epoch, accumulation, steps_per_epoch, total)


@dataclass(frozen=True)
class LoopSettings:
    """Scheduling knobs of one stage run (from ``training`` and the stage section)."""

    stage: str
    max_grad_norm: float
    log_interval: int
    eval_interval: int
    save_checkpoint_every: int
    monitor: str = "val_loss"
    patience: int = 5
    early_stopping: bool = False
    checkpoint_dir: Path | None = None
    resume_from: Path | None = None
    stop_after_steps: int | None = None
    progress: bool | None = None
    is_main: bool = True


@dataclass
class StageRun:
    """The objects one stage trains with (built by :mod:`~weighted_mtp.training.stages`)."""

    model: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    sampler: ResumableSampler
    val_loader: DataLoader
    config: Any
    device: torch.device
    logger: MetricsLogger
    plan: StepPlan
    reference: nn.Module | None = None
    ema: Any | None = None


@dataclass
class LoopState:
    """Where the loop is; what a checkpoint records besides the module states."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    last_train: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    best_checkpoint: Path | None = None
    checkpoint: Path | None = None
    completed: bool = False


def run_loop(run: StageRun, settings: LoopSettings) -> tuple[LoopState, BestTracker]:
    """Train ``run.model`` for ``run.plan.total_steps`` steps (or until stopped).

    Args:
        run: Model, objective, optimizer, scheduler, loaders, logger.
        settings: Intervals, checkpointing, resume and stop options.

    Returns:
        The final loop state (``completed`` False when ``stop_after_steps`` cut it short,
        ``checkpoint`` the last checkpoint written) and the best tracker.

    Raises:
        FloatingPointError: A loss or gradient norm became NaN/inf (stage, step and loss
            named; the best checkpoint on disk is left as it was).
    """
    state = LoopState()
    tracker = BestTracker(settings.monitor, settings.patience, settings.early_stopping)
    if settings.resume_from is not None:
        _resume(run, settings, state, tracker)
    run.model.train()
    progress = make_progress(run.plan.total_steps, state.global_step, stage_label(settings.stage),
                             settings.is_main, settings.progress)
    meter = _Throughput()
    try:
        while state.global_step < run.plan.total_steps:
            if _train_epoch(run, settings, state, tracker, progress, meter):
                break
    finally:
        progress.close()
    if state.global_step >= run.plan.total_steps or tracker.should_stop:
        state.completed = True
        state.checkpoint = _save(run, settings, state, tracker, "final")
    barrier()  # rank 0's checkpoints are on disk before any rank reads one
    return state, tracker


def _train_epoch(
    run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker, progress: Any,
    meter: _Throughput,
) -> bool:
    """Run the rest of the current epoch; return True when the loop must stop early."""
    run.sampler.set_epoch(state.epoch)
    run.sampler.skip_batches(state.batch_in_epoch, run.train_loader.batch_size)
    batches = iter(run.train_loader)
    epoch = state.epoch
    while state.epoch == epoch and state.global_step < run.plan.total_steps:
        micro_batches = _take(batches, run.plan.accumulation)
        figures = train_step(
            run.model, micro_batches, run.objective, run.optimizer, run.scheduler,
            max_grad_norm=settings.max_grad_norm, device=run.device,
            step=state.global_step + 1, reference=run.reference, ema=run.ema,
        )
        epoch_ended = _advance(state, run.plan)
        meter.add(figures.pop("tokens"))
        progress.update(1)
        progress.set_postfix(loss=f"{figures['loss']:.4f}", refresh=False)
        if _after_step(run, settings, state, tracker, figures, meter, epoch_ended):
            return True
    return False


def _take(batches: Iterator[Any], n: int) -> list[Any]:
    """The next ``n`` micro-batches (the plan guarantees the epoch has them)."""
    return [next(batches) for _ in range(n)]


def _advance(state: LoopState, plan: StepPlan) -> bool:
    """Count one step; move to the next epoch when this one is used up. Returns epoch end."""
    state.global_step += 1
    state.batch_in_epoch += plan.accumulation
    if state.batch_in_epoch >= plan.steps_per_epoch * plan.accumulation:
        state.epoch += 1
        state.batch_in_epoch = 0
        return True
    return False


def _after_step(
    run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker,
    figures: dict[str, float], meter: _Throughput, epoch_ended: bool,
) -> bool:
    """Log, evaluate, checkpoint; return True when the loop must stop now."""
    step, last = state.global_step, state.global_step >= run.plan.total_steps
    state.last_train = {"epoch": step / run.plan.steps_per_epoch, **figures}
    if step % settings.log_interval == 0 or last:
        _log_train(run, settings, state, meter.rate())
    if step % settings.eval_interval == 0 or epoch_ended or last:
        _evaluate(run, settings, state, tracker)
    if epoch_ended and state.epoch % settings.save_checkpoint_every == 0:
        state.checkpoint = _save(run, settings, state, tracker, state.epoch)
    if tracker.should_stop and not last:
        log.warning("[%s] early stopping at step %d: %s did not improve for %d evaluations.",
                    settings.stage, step, tracker.monitor, tracker.bad_evaluations)
        return True
    if settings.stop_after_steps is not None and step >= settings.stop_after_steps and not last:
        state.checkpoint = _save(run, settings, state, tracker, f"step_{step}")
        log.info("[%s] stopped after step %d as requested (checkpoint: %s).", settings.stage,
                 step, state.checkpoint or "none, no checkpoint_dir")
        return True
    return False


def _log_train(run: StageRun, settings: LoopSettings, state: LoopState, tokens_per_s: float) -> None:
    """Send the last step's figures to the logger and the stage history."""
    row = train_row(state.last_train, tokens_per_s)
    state.history.append({"step": state.global_step, **row})
    run.logger.log_metrics(prefixed(settings.stage, row), state.global_step)


def train_row(figures: Mapping[str, float], tokens_per_s: float) -> dict[str, float]:
    """Name a step's figures as logged: losses under ``train/``, the rest top-level.

    ``{"loss": ..., "head0_loss": ..., "lr": ..., "weights/mean": ...}`` →
    ``{"train/loss": ..., "train/head0_loss": ..., "lr": ..., "weights/mean": ...,
    "tokens_per_s": ...}`` (``weights/*`` and ``td/*`` statistics stay top-level).
    """
    top_level = ("epoch", "lr", "grad_norm")
    row = {}
    for key, value in figures.items():
        if key in top_level or key.startswith(("weights/", "td/")):
            row[key] = value
        else:
            row[f"train/{key}"] = value
    row["tokens_per_s"] = tokens_per_s
    return row


def prefixed(stage: str, row: Mapping[str, float]) -> dict[str, float]:
    """``{"train/loss": x}`` → ``{"stage2/train/loss": x}``."""
    return {f"{stage}/{key}": value for key, value in row.items()}


def _evaluate(run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker) -> None:
    """Validate, save the best checkpoint when the monitored metric improved, and log the
    figures with the best value so far (``best_{monitor}``, once there is a finite one)."""
    figures = evaluate_stage(run.model, run.val_loader, run.config, run.device, settings.stage,
                             reference=run.reference)
    state.last_val, state.last_eval_step = figures, state.global_step
    state.history.append({"step": state.global_step, **figures})
    best = handle_evaluation(figures, state.global_step, tracker,
                             lambda: _save(run, settings, state, tracker, "best"))
    state.best_checkpoint = best or state.best_checkpoint
    logged = dict(figures)
    if tracker.best is not None:
        logged[f"best_{tracker.monitor}"] = tracker.best
    run.logger.log_metrics(prefixed(settings.stage, logged), state.global_step)


def handle_evaluation(
    figures: Mapping[str, float], step: int, tracker: BestTracker, save_best: Callable[[], Path | None]
) -> Path | None:
    """Update the tracker; call ``save_best()`` only when the monitored metric improved.

    Args:
        figures: Validation metrics.
        step: Global step of the evaluation.
        tracker: The best tracker.
        save_best: Writes the best checkpoint and returns its path (None when the run keeps
            no checkpoints).

    Returns:
        The path written, or None when the metric did not improve (nothing written).
    """
    if tracker.update(dict(figures), step):
        return save_best()
    return None


def _save(
    run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker, tag: str | int
) -> Path | None:
    """Write ``checkpoint_{stage}_{tag}.pt`` when a directory is set.

    Every rank calls it (under FSDP gathering the payload is a collective) and gets the
    path back, so all ranks agree on which checkpoints exist; only the main rank writes.
    The others read a checkpoint only after the stage's closing barrier.
    """
    if settings.checkpoint_dir is None:
        return None
    path = checkpoint_path(settings.checkpoint_dir, settings.stage, tag)
    payload = checkpoint_payload(run, settings, state, tracker)
    if settings.is_main:
        save_checkpoint(path, payload)
        log.info("[%s] step %d: saved %s", settings.stage, state.global_step, path)
    return path


def checkpoint_payload(
    run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker
) -> dict[str, Any]:
    """The checkpoint dict (format in :mod:`~weighted_mtp.training.checkpoint`)."""
    return {
        "format_version": 1,
        "stage": settings.stage,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "global_step": state.global_step,
        "steps_per_epoch": run.plan.steps_per_epoch,
        "total_steps": run.plan.total_steps,
        "model": model_state(run.model),
        "optimizer": optimizer_state(run.model, run.optimizer),
        "scheduler": run.scheduler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "rng": capture_rng_state(),
        "metrics": {**prefix_train(state.last_train), **state.last_val},
        "history": state.history,
        "best": tracker.state_dict(),
        "config": run_config_dict(run.config),
    }


def prefix_train(figures: Mapping[str, float]) -> dict[str, float]:
    """Train figures keyed as in the history (``train/loss``, ``lr``, ...), without throughput."""
    row = train_row(figures, 0.0)
    row.pop("tokens_per_s")
    return row


def run_config_dict(config: Any) -> dict[str, Any]:
    """The config as plain types, without the raw params copy (kept once, structured)."""
    plain = config_to_dict(config)
    if isinstance(plain, dict):
        plain.pop("raw", None)
    return plain


def _resume(run: StageRun, settings: LoopSettings, state: LoopState, tracker: BestTracker) -> None:
    """Restore everything from ``settings.resume_from`` (a checkpoint of this stage).

    Raises:
        ValueError: When the checkpoint belongs to another stage or was written with a
            different number of steps per epoch (batch size or data changed), since the
            data position could then not be reproduced.
    """
    payload = load_checkpoint(settings.resume_from)
    if payload["stage"] != settings.stage:
        raise ValueError(
            f"{settings.resume_from} is a {payload['stage']!r} checkpoint; cannot resume "
            f"{settings.stage!r} from it."
        )
    if payload.get("steps_per_epoch") != run.plan.steps_per_epoch:
        raise ValueError(
            f"{settings.resume_from}: written with {payload.get('steps_per_epoch')} steps per "
            f"epoch, this run has {run.plan.steps_per_epoch} (batch_size, "
            "gradient_accumulation_steps or the data changed); the data position cannot be "
            "reproduced. Resume with the checkpoint's settings or start the stage afresh."
        )
    changes = report_config_changes(payload, run_config_dict(run.config), _RESUME_EXPECTED_CHANGES)
    log.info("[%s] resuming from %s at step %d (epoch %d, micro-batch %d); %d config change(s).",
             settings.stage, settings.resume_from, payload["global_step"], payload["epoch"],
             payload["batch_in_epoch"], len(changes))
    restore_training_state(payload, run.model, run.optimizer, run.scheduler, run.ema)
    tracker.load_state_dict(payload["best"])
    _restore_loop_state(payload, state, settings)
    restore_rng_state(payload["rng"])


def _restore_loop_state(payload: Mapping[str, Any], state: LoopState, settings: LoopSettings) -> None:
    state.epoch = int(payload["epoch"])
    state.batch_in_epoch = int(payload["batch_in_epoch"])
    state.global_step = int(payload["global_step"])
    state.history = list(payload.get("history", []))
    state.last_val = {k: v for k, v in payload.get("metrics", {}).items() if k.startswith("val_")}
    if settings.checkpoint_dir is not None:
        best = checkpoint_path(settings.checkpoint_dir, settings.stage, "best")
        state.best_checkpoint = best if best.is_file() else None


class _Throughput:
    """Tokens per second since the last :meth:`rate` call."""

    def __init__(self) -> None:
        self.tokens = 0.0
        self.start = time.perf_counter()

    def add(self, tokens: float) -> None:
        self.tokens += tokens

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = self.tokens / elapsed if elapsed > 0 else math.nan
        self.tokens, self.start = 0.0, time.perf_counter()
        return rate
