"""Helpers shared by the training-loop tests (a uniquely named module, so importing it
cannot pick up another directory's ``conftest``)."""

from __future__ import annotations

import torch

CPU = torch.device("cpu")


def train_losses(history: list[dict[str, float]]) -> list[tuple[int, float]]:
    """``(step, train/loss)`` of every training row of a stage history."""
    return [(row["step"], row["train/loss"]) for row in history if "train/loss" in row]


def run_stage(stage, model, tokenizer, train_records, val_records, config, checkpoint_dir=None, *,
              logger=None, reference=None, **fit_options):
    """One stage through the real :class:`Trainer`, configured from a validated RunConfig as the
    pipeline nodes configure it (quiet: history only, no progress bar)."""
    from weighted_mtp.training.metrics_logger import HistoryBackend, MetricsLogger
    from weighted_mtp.training.trainer import trainer_for

    trainer = trainer_for(stage, config, checkpoint_dir=checkpoint_dir, reference=reference,
                          logger=logger or MetricsLogger([HistoryBackend()]))
    return trainer.fit(model, tokenizer, train_records, val_records, **{"progress": False, **fit_options})
