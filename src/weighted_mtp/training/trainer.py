"""The trainer every stage runs: setup → train → validate → checkpoint → cleanup.

Pretrain, stage 1 and stage 2 differ only in their
:class:`~weighted_mtp.training.objective.Objective` (the loss, and through it which
parameters train) and in the ``training.<stage>`` block that schedules them. Read
:meth:`Trainer.fit` top to bottom for the whole story.

One global step = one optimizer update over ``gradient_accumulation_steps`` micro-batches.
``n_epochs`` may be fractional: the stage runs ``max(1, int(n_epochs · steps_per_epoch))``
steps, and the global step runs on across epoch boundaries. After each step:

- log the step's figures when ``global_step % log_interval == 0`` and at the last step;
- validate when ``global_step % eval_interval == 0``, when an epoch ends, and at the end;
  save ``checkpoint_{stage}_best.pt`` only when the monitored metric improved;
- every ``save_every_steps`` steps overwrite ``checkpoint_{stage}_last.pt`` (atomically), so
  a killed run loses at most that many steps (``training.resume_from: last``);
- at the end of every ``save_checkpoint_every``-th epoch save ``checkpoint_{stage}_epoch_{e}.pt``;
- at the end save ``checkpoint_{stage}_final.pt``.

An FSDP-sharded model writes each of these as a ``.dcp`` folder instead (one shard file per
rank, :mod:`weighted_mtp.runtime.sharded_checkpoint`); best and final also hold the
consolidated model.

Resume restores model, optimizer, scheduler, EMA, RNG, best-so-far and the position in the
data: each epoch's order comes from a generator seeded with ``seed + epoch`` and the sampler
skips the micro-batches already consumed, so the remaining steps see exactly the batches of
an uninterrupted run (docs/TRAINING.md, "Resume").
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from weighted_mtp.data import MTPCollator, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.data.diff import mark_first_errors
from weighted_mtp.runtime.device import resolve_device
from weighted_mtp.runtime.distributed import barrier, get_rank, get_world_size, is_distributed, is_main_process
from weighted_mtp.runtime.parallel import broadcast_parameters, is_sharded, model_state, optimizer_state, prepare_model
from weighted_mtp.runtime.sharded_checkpoint import (
    consolidated_state,
    is_complete,
    is_sharded_checkpoint,
    plain_model,
    save_sharded,
    sharded_path,
)
from weighted_mtp.runtime.results import plain_floats
from weighted_mtp.runtime.runs import current_run_id, latest_checkpoint
from weighted_mtp.tracking.attach import mlflow_backend_for
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
from weighted_mtp.training.metrics_logger import ConsoleBackend, MetricsLogger, stage_label
from weighted_mtp.training.objective import Objective, objective_for, set_trainable
from weighted_mtp.training.progress import progress as progress_bar
from weighted_mtp.training.sampler import ResumableSampler
from weighted_mtp.training.schedule import build_optimizer, build_scheduler
from weighted_mtp.training.seeding import capture_rng_state, restore_rng_state, seed_everything
from weighted_mtp.training.step import train_step, trainable_parameters
from weighted_mtp.value_weighting import TDStatsEMA

log = logging.getLogger(__name__)

Records = Sequence[Mapping[str, Any]]

_CHECKPOINT_STAGE = re.compile(r"^checkpoint_(pretrain|stage1|stage2)_")
LAST = "last"  # ``training.resume_from: last``: this stage's newest rolling checkpoint
# Keys whose change between a checkpoint and the resuming run is expected, not reported.
_RESUME_EXPECTED_CHANGES = ("training.resume_from",)


@dataclass
class TrainState:
    """Where training is: what a checkpoint records besides the module states."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    last_train: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    checkpoint: Path | None = None
    completed: bool = False


@dataclass
class StageResult:
    """What a stage returns.

    Attributes:
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        model: The trained model, a plain module on the training device (FSDP shards
            gathered), holding the last step's weights unless ``fit(load_best=True)``.
        metrics: Final figures, unprefixed: ``train/loss``, ``train/head{k}_loss``, ``lr``,
            ``grad_norm``, ``epoch``, ``weights/...`` and ``val_loss``, ``val_mtp_loss``, ...
        history: Every logged row of the stage (``{"step": n, ...}``, same keys as
            ``metrics``), including those before a resume.
        best_checkpoint: ``checkpoint_{stage}_best.pt`` when one was written.
        final_checkpoint: ``checkpoint_{stage}_final.pt``, or the ``step_{n}`` checkpoint
            of a run cut short by ``stop_after_steps``; None without a checkpoint dir.
        best_metric: Best value of ``monitor`` (None if never finite).
        monitor: The metric that chose the best checkpoint (``training.monitor``).
        global_step: Optimizer steps taken in this stage.
        total_steps: Steps the stage was planned for.
        completed: False when ``stop_after_steps`` stopped the run before the end.
    """

    stage: str
    model: nn.Module
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_checkpoint: Path | None
    final_checkpoint: Path | None
    best_metric: float | None
    monitor: str = "val_loss"
    global_step: int = 0
    total_steps: int = 0
    completed: bool = True

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly record of the stage (the catalog persists it)."""
        return {
            "skipped": False, "stage": self.stage, "metrics": plain_floats(self.metrics),
            "best_metric": self.best_metric, "monitor": self.monitor,
            "best_checkpoint": str(self.best_checkpoint) if self.best_checkpoint else None,
            "final_checkpoint": str(self.final_checkpoint) if self.final_checkpoint else None,
            "global_step": self.global_step, "total_steps": self.total_steps, "run_id": current_run_id(),
        }


class Trainer:
    """Trains one model with one :class:`Objective`.

    Args:
        objective: What the stage optimises (:func:`~weighted_mtp.training.objective.objective_for`).
        training: The validated ``training`` block; ``training.<objective.stage>`` schedules it.
        policy: The ``models.policy`` block (device, dtype).
        max_length: ``dataset.max_length``: records are encoded to at most this many tokens.
        checkpoint_dir: Where checkpoints go (None: none are written).
        reference: Rho-1's frozen reference model (stage 2 with ``weighting: rho1``).
        logger: The metrics logger (default: console, plus MLflow when a run is active).
    """

    def __init__(self, objective: Objective, training: Any, policy: Any, *, max_length: int,
                 checkpoint_dir: str | Path | None = None, reference: nn.Module | None = None,
                 logger: MetricsLogger | None = None) -> None:
        self.objective, self.training, self.policy = objective, training, policy
        self.stage = objective.stage
        self.section = getattr(training, self.stage)
        self.max_length = max_length
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.reference = reference
        self.logger = logger if logger is not None else default_logger()
        self.device = resolve_device(policy.device)
        self.is_main = is_main_process()

    # -- the story ------------------------------------------------------------------------

    def fit(self, model: nn.Module, tokenizer: Any, train_records: Records, val_records: Records, *,
            resume_from: str | Path | None = None, stop_after_steps: int | None = None,
            progress: bool | None = None, load_best: bool = False) -> StageResult:
        """Train ``model`` in place and return the :class:`StageResult`.

        Args:
            model: The model to train (``MetaLlamaMTPAdapter``).
            tokenizer: Its tokenizer.
            train_records, val_records: Alpaca records (validation must not be empty).
            resume_from: A checkpoint of this stage (default ``training.resume_from`` when its
                name says it belongs to this stage).
            stop_after_steps: Stop after this global step, saving ``checkpoint_{stage}_step_{n}.pt``.
            progress: Force the progress bar on/off (default: on a TTY).
            load_best: Return the best checkpoint's weights instead of the last step's.

        Raises:
            FloatingPointError: A loss or gradient norm became NaN/inf (stage, step and loss
                named; the best checkpoint on disk is left as it was).
            ValueError: No usable rows, a resume checkpoint of another stage or shape.
        """
        try:
            self.setup(model, tokenizer, train_records, val_records)
            resume = resume_path(self.stage, resume_from, self.training.resume_from, self.checkpoint_dir)
            state, tracker = self.train(resume, stop_after_steps, progress)
        finally:
            self.logger.close()  # the stage's end: backends flush (MLflow sends what it queued), also on error
        return self.cleanup(state, tracker, load_best)

    def setup(self, model: nn.Module, tokenizer: Any, train_records: Records, val_records: Records) -> None:
        """What trains, on which data, with which optimizer and schedule.

        Under torchrun the model is made data-parallel first (rank 0's weights everywhere, or
        FSDP shards), so the optimizer is built over what each rank actually trains.
        """
        objective, section, training = self.objective, self.section, self.training
        if objective.weighting == "rho1":
            freeze_reference(self.reference)
        set_trainable(model, **objective.trainable_parts)
        self.ema = None
        if objective.weights_tokens_by_td and objective.td.td_ema.enabled:
            self.ema = TDStatsEMA(objective.td.td_ema.momentum, objective.td.td_ema.warmup_steps)
        train, val = stage_datasets(objective, tokenizer, train_records, val_records, self.max_length)
        seed_everything(training.seed)
        if not (training.distributed.strategy == "fsdp" and is_distributed()):
            model = model.to(self.device)  # FSDP moves only each rank's shards
        self.model = prepare_model(model, training.distributed.strategy, self.device, self.policy.dtype,
                                   activation_checkpointing=training.distributed.activation_checkpointing)
        pad_token_id = resolve_pad_token_id(tokenizer)
        self.train_loader, self.sampler = build_loader(train, section.batch_size, pad_token_id,
                                                       seed=training.seed, shuffle=True,
                                                       num_workers=training.num_workers)
        self.val_loader, _ = build_loader(val, section.batch_size, pad_token_id, seed=training.seed,
                                          shuffle=False, num_workers=training.num_workers, evaluation=True)
        self.accumulation = getattr(section, "gradient_accumulation_steps", 1)
        micro_batches = math.ceil(self.sampler.num_samples / section.batch_size)
        self.steps_per_epoch, self.total_steps = plan_steps(micro_batches, self.accumulation, section.n_epochs)
        self.optimizer = build_optimizer(trainable_parameters(self.model), section.learning_rate,
                                         getattr(section, "weight_decay", 0.0))
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, section.warmup_ratio)
        self.logger.log_params({
            f"{self.stage}/total_steps": self.total_steps,
            f"{self.stage}/steps_per_epoch": self.steps_per_epoch,
            f"{self.stage}/train_rows": len(train),
            f"{self.stage}/val_rows": len(val),
            f"{self.stage}/trainable_parameters": sum(p.numel() for _, p in trainable_parameters(self.model)),
        })
        log.info("[%s] %d step(s) (%d per epoch, n_epochs %s), %d training rows, %d validation rows.",
                 self.stage, self.total_steps, self.steps_per_epoch, section.n_epochs, len(train), len(val))

    def train(self, resume_from: Path | None, stop_after_steps: int | None,
              progress: bool | None) -> tuple[TrainState, BestTracker]:
        """Run the steps (the rest of them after a resume); save the final checkpoint."""
        state = TrainState()
        tracker = BestTracker(self.training.monitor, self.training.patience, self.training.early_stopping)
        if resume_from is not None:
            self.resume(resume_from, state, tracker)
        self.model.train()
        meter = _Throughput()
        with progress_bar(self.total_steps, state.global_step, stage_label(self.stage), self.is_main,
                          progress) as bar:
            stopped = False
            while not stopped and state.global_step < self.total_steps:
                stopped = self._train_epoch(state, tracker, bar, meter, stop_after_steps)
        if state.global_step >= self.total_steps or tracker.should_stop:
            state.completed = True
            state.checkpoint = self.save_checkpoint(state, tracker, "final")
        barrier()  # rank 0's checkpoints are on disk before any rank reads one
        return state, tracker

    def validate(self, state: TrainState, tracker: BestTracker) -> None:
        """Validate, save the best checkpoint when the monitored metric improved, and log the
        figures with the best value so far (``best_{monitor}``, once there is a finite one)."""
        figures = evaluate_stage(self.model, self.val_loader, self.objective, self.device, reference=self.reference)
        state.last_val = figures
        state.history.append({"step": state.global_step, **figures})
        if tracker.update(dict(figures), state.global_step):
            state.best_checkpoint = self.save_checkpoint(state, tracker, "best") or state.best_checkpoint
        logged = dict(figures)
        if tracker.best is not None:
            logged[f"best_{tracker.monitor}"] = tracker.best
        self.logger.log_metrics(prefixed(self.stage, logged), state.global_step)

    def save_checkpoint(self, state: TrainState, tracker: BestTracker, tag: str | int) -> Path | None:
        """Write ``checkpoint_{stage}_{tag}.pt`` when a directory is set (a ``.dcp`` folder
        of shards when the model is FSDP-sharded; best and final also hold the consolidated
        model).

        Every rank calls it (under FSDP saving is a collective) and gets the path back, so
        all ranks agree on which checkpoints exist; only the main rank writes a ``.pt``.
        The others read a checkpoint only after the stage's closing barrier.
        """
        if self.checkpoint_dir is None:
            return None
        path = checkpoint_path(self.checkpoint_dir, self.stage, tag)
        payload = {
            "format_version": 1, "stage": self.stage, "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch, "global_step": state.global_step,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": capture_rng_state(), "metrics": {**prefix_train(state.last_train), **state.last_val},
            "history": state.history, "best": tracker.state_dict(), "config": self.config_record(),
            "run_id": current_run_id(), "objective": self.objective_record(),
            "model_args": self.model.args.to_dict(),
        }
        if is_sharded(self.model):
            path = save_sharded(sharded_path(path), self.model, self.optimizer, payload,
                                export_model=tag in ("best", "final"))
            log.info("[%s] step %d: saved %s (sharded)", self.stage, state.global_step, path)
            return path
        payload["model"] = model_state(self.model)
        payload["optimizer"] = optimizer_state(self.model, self.optimizer)
        if self.is_main:
            save_checkpoint(path, payload)
            log.info("[%s] step %d: saved %s", self.stage, state.global_step, path)
        return path

    def cleanup(self, state: TrainState, tracker: BestTracker, load_best: bool) -> StageResult:
        """A plain model (FSDP shards gathered on every rank) and the stage's record."""
        model = unsharded(self.model)
        if load_best and state.best_checkpoint is not None:
            payload = load_checkpoint(state.best_checkpoint)
            model.load_state_dict(payload["model"])
            log.info("Loaded the best %s weights from %s (step %d)", self.stage, state.best_checkpoint,
                     payload["global_step"])
        return StageResult(
            stage=self.stage, model=model, metrics={**prefix_train(state.last_train), **state.last_val},
            history=state.history, best_checkpoint=state.best_checkpoint, final_checkpoint=state.checkpoint,
            best_metric=tracker.best, monitor=tracker.monitor, global_step=state.global_step,
            total_steps=self.total_steps, completed=state.completed,
        )

    # -- the pieces -----------------------------------------------------------------------

    def _train_epoch(self, state: TrainState, tracker: BestTracker, bar: Any, meter: _Throughput,
                     stop_after_steps: int | None) -> bool:
        """Run the rest of the current epoch; return True when training must stop early."""
        self.sampler.set_epoch(state.epoch)
        self.sampler.skip_batches(state.batch_in_epoch, self.train_loader.batch_size)
        batches = iter(self.train_loader)
        epoch = state.epoch
        while state.epoch == epoch and state.global_step < self.total_steps:
            micro_batches = [next(batches) for _ in range(self.accumulation)]  # the plan guarantees them
            figures = train_step(self.model, micro_batches, self.objective, self.optimizer, self.scheduler,
                                 max_grad_norm=getattr(self.section, "max_grad_norm", 1.0), device=self.device,
                                 step=state.global_step + 1, reference=self.reference, ema=self.ema)
            epoch_ended = self._advance(state)
            meter.add(figures.pop("tokens"))
            bar.update(1)
            bar.set_postfix(loss=f"{figures['loss']:.4f}", refresh=False)
            if self._after_step(state, tracker, figures, meter, epoch_ended, stop_after_steps):
                return True
        return False

    def _advance(self, state: TrainState) -> bool:
        """Count one step; move to the next epoch when this one is used up. Returns epoch end."""
        state.global_step += 1
        state.batch_in_epoch += self.accumulation
        if state.batch_in_epoch >= self.steps_per_epoch * self.accumulation:
            state.epoch += 1
            state.batch_in_epoch = 0
            return True
        return False

    def _after_step(self, state: TrainState, tracker: BestTracker, figures: dict[str, float],
                    meter: _Throughput, epoch_ended: bool, stop_after_steps: int | None) -> bool:
        """Log, validate, checkpoint; return True when training must stop now."""
        training, step = self.training, state.global_step
        last = step >= self.total_steps
        state.last_train = {"epoch": step / self.steps_per_epoch, **figures}
        if step % training.log_interval == 0 or last:
            row = train_row(state.last_train, meter.rate())
            state.history.append({"step": step, **row})
            self.logger.log_metrics(prefixed(self.stage, row), step)
        if step % training.eval_interval == 0 or epoch_ended or last:
            self.validate(state, tracker)
        if epoch_ended and state.epoch % training.save_checkpoint_every == 0:
            state.checkpoint = self.save_checkpoint(state, tracker, state.epoch)
        if training.save_every_steps and step % training.save_every_steps == 0 and not last:
            self.save_checkpoint(state, tracker, LAST)
        if tracker.should_stop and not last:
            log.warning("[%s] early stopping at step %d: %s did not improve for %d evaluations.",
                        self.stage, step, tracker.monitor, tracker.bad_evaluations)
            return True
        if stop_after_steps is not None and step >= stop_after_steps and not last:
            state.checkpoint = self.save_checkpoint(state, tracker, f"step_{step}")
            log.info("[%s] stopped after step %d as requested (checkpoint: %s).", self.stage, step,
                     state.checkpoint or "none, no checkpoint_dir")
            return True
        return False

    def objective_record(self) -> dict[str, Any]:
        """What the stage optimises, as plain values (the TD settings are config, compared
        and reported as such)."""
        return {key: value for key, value in asdict(self.objective).items() if key != "td"}

    def _refuse_changed_run(self, path: Path, payload: Mapping[str, Any]) -> None:
        """A checkpoint of another objective or model shape cannot continue this run: its
        optimizer state and losses would not mean the same thing (a changed recipe shows
        as a changed objective)."""
        for what, saved, current in (("objective", payload.get("objective"), self.objective_record()),
                                     ("model", payload.get("model_args"), self.model.args.to_dict())):
            if saved is None:
                continue
            changed = [f"{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} now"
                       for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
            if changed:
                raise ValueError(f"{path}: cannot resume {self.stage} with a different {what} "
                                 f"({'; '.join(changed)}). Resume with the checkpoint's recipe and "
                                 "model, or start the stage afresh (training.resume_from: null).")

    def config_record(self) -> dict[str, Any]:
        """What a checkpoint records of the configuration, to name what changed on resume."""
        return {"training": config_to_dict(self.training), "dataset": {"max_length": self.max_length}}

    def resume(self, path: Path, state: TrainState, tracker: BestTracker) -> None:
        """Restore everything from ``path`` (a checkpoint of this stage).

        Raises:
            ValueError: When the checkpoint belongs to another stage or was written with a
                different number of steps per epoch (batch size or data changed), since the
                data position could then not be reproduced.
        """
        payload = load_checkpoint(path)
        if payload["stage"] != self.stage:
            raise ValueError(f"{path} is a {payload['stage']!r} checkpoint; cannot resume {self.stage!r} from it.")
        if payload.get("steps_per_epoch") != self.steps_per_epoch:
            raise ValueError(
                f"{path}: written with {payload.get('steps_per_epoch')} steps per epoch, this run has "
                f"{self.steps_per_epoch} (batch_size, gradient_accumulation_steps or the data changed); "
                "the data position cannot be reproduced. Resume with the checkpoint's settings or start "
                "the stage afresh."
            )
        self._refuse_changed_run(path, payload)
        changes = report_config_changes(payload, self.config_record(), _RESUME_EXPECTED_CHANGES)
        log.info("[%s] resuming from %s at step %d (epoch %d, micro-batch %d); %d config change(s).",
                 self.stage, path, payload["global_step"], payload["epoch"], payload["batch_in_epoch"], len(changes))
        restore_training_state(payload, self.model, self.optimizer, self.scheduler, self.ema,
                               shards=path if is_sharded_checkpoint(path) else None)
        tracker.load_state_dict(payload["best"])
        state.epoch, state.batch_in_epoch = int(payload["epoch"]), int(payload["batch_in_epoch"])
        state.global_step = int(payload["global_step"])
        state.history = list(payload.get("history", []))
        state.last_val = {k: v for k, v in payload.get("metrics", {}).items() if k.startswith("val_")}
        if self.checkpoint_dir is not None:
            best = checkpoint_path(self.checkpoint_dir, self.stage, "best")
            state.best_checkpoint = (best if best.is_file() else
                                     sharded_path(best) if is_complete(sharded_path(best)) else None)
        restore_rng_state(payload["rng"])


def trainer_for(stage: str, config: Any, *, checkpoint_dir: str | Path | None = None,
                reference: nn.Module | None = None, logger: MetricsLogger | None = None) -> Trainer:
    """The :class:`Trainer` of ``stage`` configured from a whole validated ``RunConfig``, as
    the pipeline's nodes configure it from their blocks (for notebooks and benchmarks)."""
    objective = objective_for(stage, config.training, config.project.recipe)
    return Trainer(objective, config.training, config.models.policy, max_length=config.dataset.max_length,
                   checkpoint_dir=checkpoint_dir, reference=reference, logger=logger)


def default_logger() -> MetricsLogger:
    """Console, plus MLflow when a run is active (the Kedro hook started one; rank 0 only)."""
    backends: list[Any] = [ConsoleBackend()]
    tracking = mlflow_backend_for()
    if tracking is not None:
        backends.append(tracking)
    return MetricsLogger(backends, is_main=is_main_process())


def stage_datasets(objective: Objective, tokenizer: Any, train_records: Records, val_records: Records,
                   max_length: int) -> tuple[TokenizedDataset, TokenizedDataset]:
    """Encode the splits once; rows without any labelled token are dropped, and so are the
    incorrect ones when the stage uses correct rows alone (rho-1's reference)."""
    only_correct = objective.ce_rows == "correct" and not (objective.train_value or objective.report_value)
    names = ("training", "validation")
    datasets = tuple(TokenizedDataset(records, tokenizer, max_length, only_correct=only_correct,
                                      drop_unlabelled=True, name=name)
                     for records, name in zip((train_records, val_records), names))
    if objective.value_target == "first_error":
        for name, dataset in zip(names, datasets):
            marked = mark_first_errors(dataset.rows)
            log.info("[%s] first-error value targets: %d of %d incorrect %s rows have a bug position "
                     "(a correct row of the same problem to diff against)", objective.stage, marked,
                     sum(not row["is_correct"] for row in dataset.rows), name)
    for name, dataset in zip(names, datasets):
        if len(dataset) == 0:
            what = "correct " if only_correct else ""
            raise ValueError(f"{objective.stage}: no {what}{name} rows with a labelled token; check the "
                             f"{name} records and dataset.max_length ({max_length}).")
    check_outcome_classes(objective, datasets[0].rows)
    return datasets[0], datasets[1]


def check_outcome_classes(objective: Objective, rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse training rows that cannot teach the objective: a CE on correct rows with no
    correct row would train on nothing (a loss of 0.0), a critic with one outcome class
    learns a constant."""
    correct = sum(bool(row["is_correct"]) for row in rows)
    if objective.train_ce and objective.ce_rows == "correct" and correct == 0:
        raise ValueError(f"{objective.stage}: none of the {len(rows)} training rows is correct, and the "
                         "loss is the CE of correct solutions (train_on: correct); check the training "
                         "records' is_correct labels.")
    if objective.train_value and objective.value_rows == "all" and correct in (0, len(rows)):
        which = "correct" if correct else "incorrect"
        raise ValueError(f"{objective.stage}: all {len(rows)} training rows are {which}; the critic needs "
                         "correct and incorrect solutions to learn which tokens lead to a correct program.")


def build_loader(dataset: TokenizedDataset, batch_size: int, pad_token_id: int, *, seed: int, shuffle: bool,
                 num_workers: int = 0, evaluation: bool = False, shard: bool = True) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader over ``dataset`` with a seeded, resumable, rank-aware sampler.

    ``evaluation`` gives every row once, without padding rows that even out shards;
    ``shard=False`` gives every rank all rows (a report computed on one rank).
    """
    rank, world_size = (get_rank(), get_world_size()) if shard and is_distributed() else (0, 1)
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle, rank=rank,
                               world_size=world_size, pad=not evaluation)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                        collate_fn=MTPCollator(pad_token_id), num_workers=num_workers)
    return loader, sampler


def plan_steps(micro_batches_per_epoch: int, accumulation: int, n_epochs: float) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` for possibly fractional epochs; a remainder of fewer
    than ``accumulation`` micro-batches at an epoch's end is not used.

    Raises:
        ValueError: When an epoch has fewer micro-batches than one accumulation needs.
    """
    if micro_batches_per_epoch < accumulation:
        raise ValueError(
            f"An epoch has {micro_batches_per_epoch} micro-batch(es) but gradient_accumulation_steps "
            f"is {accumulation}: lower gradient_accumulation_steps or batch_size, or add data."
        )
    steps_per_epoch = micro_batches_per_epoch // accumulation
    return steps_per_epoch, max(1, int(n_epochs * steps_per_epoch))


def resume_path(stage: str, explicit: str | Path | None, configured: str | None,
                checkpoint_dir: Path | None = None) -> Path | None:
    """The checkpoint to resume: the explicit one, else ``training.resume_from``.

    ``last`` is this stage's newest rolling checkpoint in the experiment's runs (None, a
    fresh start, when there is none). A path whose file name (``checkpoint_{stage}_...``)
    says it belongs to another stage is ignored, so one ``resume_from`` can point a
    multi-stage pipeline at the stage it was interrupted in.
    """
    if explicit is not None:
        return Path(explicit)
    if not configured:
        return None
    if configured == LAST:
        found = latest_checkpoint(checkpoint_dir, stage, LAST) if checkpoint_dir is not None else None
        log.info("[%s] training.resume_from last: %s", stage, found or "no rolling checkpoint yet, starting fresh")
        return found
    match = _CHECKPOINT_STAGE.match(Path(configured).name)
    if match and match.group(1) != stage:
        log.info("[%s] training.resume_from %s belongs to %s; %s starts fresh.", stage, configured,
                 match.group(1), stage)
        return None
    return Path(configured)


def freeze_reference(reference: nn.Module | None) -> None:
    if reference is None:
        raise ValueError(
            "training.stage2.weighting is 'rho1' but no reference model was given: pass reference= "
            "(stage 1's model under recipe rho1, or a model loaded from models.reference.path)."
        )
    reference.requires_grad_(False)
    reference.eval()


def unsharded(model: nn.Module) -> nn.Module:
    """A plain CPU copy of an FSDP-sharded model, so later nodes can save, reload and
    evaluate it; else ``model``. Every rank must call it.

    The weights are gathered to rank 0's CPU one parameter at a time (no rank gathers the
    whole model on its device), then broadcast in buckets to the other ranks, which run the
    following nodes too.
    """
    if not is_sharded(model):
        return model
    state = consolidated_state(model)
    plain = plain_model(model, state if is_main_process() else None)
    broadcast_parameters(plain)
    return plain


def train_row(figures: Mapping[str, float], tokens_per_s: float) -> dict[str, float]:
    """Name a step's figures as logged: losses under ``train/``, the rest top-level.

    ``{"loss": ..., "head0_loss": ..., "lr": ..., "weights/mean": ...}`` →
    ``{"train/loss": ..., "train/head0_loss": ..., "lr": ..., "weights/mean": ...,
    "tokens_per_s": ...}`` (``weights/*`` and ``td/*`` statistics stay top-level).
    """
    row = {}
    for key, value in figures.items():
        top_level = key in ("epoch", "lr", "grad_norm") or key.startswith(("weights/", "td/"))
        row[key if top_level else f"train/{key}"] = value
    row["tokens_per_s"] = tokens_per_s
    return row


def prefix_train(figures: Mapping[str, float]) -> dict[str, float]:
    """Train figures keyed as in the history (``train/loss``, ``lr``, ...), without throughput."""
    row = train_row(figures, 0.0)
    row.pop("tokens_per_s")
    return row


def prefixed(stage: str, row: Mapping[str, float]) -> dict[str, float]:
    """``{"train/loss": x}`` → ``{"stage2/train/loss": x}``."""
    return {f"{stage}/{key}": value for key, value in row.items()}


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
