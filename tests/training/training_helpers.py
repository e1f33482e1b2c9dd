"""Helpers shared by the training-loop tests (a uniquely named module, so importing it
cannot pick up another directory's ``conftest``)."""

from __future__ import annotations

import torch

CPU = torch.device("cpu")


def train_losses(history: list[dict[str, float]]) -> list[tuple[int, float]]:
    """``(step, train/loss)`` of every training row of a stage history."""
    return [(row["step"], row["train/loss"]) for row in history if "train/loss" in row]
