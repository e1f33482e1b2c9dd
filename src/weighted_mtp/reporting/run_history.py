"""A finished run's curves and final figures, read back from what the pipeline persisted.

The training loop keeps every logged row in each checkpoint's ``history``; the pipeline
writes ``best_model_metrics.json`` per experiment. These helpers turn both into tables and
figures for ``notebooks/inspect_run.ipynb`` (MLflow holds the same curves when tracking is on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

History = list[dict[str, float]]

# (history key, label) of the curves drawn per stage: the optimised loss and its validation.
CURVES = (("train/loss", "train loss"), ("val_loss", "validation loss"))


def load_history(checkpoint: str | Path) -> History:
    """Every row a stage logged (``{"step": n, "train/loss": ..., "val_loss": ...}``).

    The checkpoint is memory-mapped, not read: only the small ``history`` list is
    materialised, so this stays cheap next to a 7B model's weights.

    Raises:
        FileNotFoundError: No file at ``checkpoint``.
        ValueError: The file is not a training checkpoint with a history.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path} (run `kedro run` first)")
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(payload, dict) or "history" not in payload:
        raise ValueError(f"{path}: not a weighted-mtp training checkpoint (no 'history').")
    return list(payload["history"])


def curve(history: Sequence[Mapping[str, float]], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of the rows that logged ``key``, in order."""
    rows = [row for row in history if key in row and row[key] is not None]
    return [int(row["step"]) for row in rows], [float(row[key]) for row in rows]


def curves_figure(histories: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """One panel per stage with its train and validation loss against the global step.

    Args:
        histories: ``{"stage1": rows, "stage2": rows}``; a stage with no rows is skipped.
    """
    stages = {name: rows for name, rows in histories.items() if rows}
    figure = Figure(figsize=(5.5 * max(len(stages), 1), 3.6))
    figure.subplots_adjust(left=0.09, right=0.98, top=0.88, bottom=0.15, wspace=0.25)
    for index, (stage, rows) in enumerate(stages.items(), start=1):
        axes = figure.add_subplot(1, len(stages), index)
        for key, label in CURVES:
            steps, values = curve(rows, key)
            axes.plot(steps, values, marker="o", markersize=3, label=label)
        axes.set_title(stage, fontsize=10)
        axes.set_xlabel("global step")
        axes.set_ylabel("loss")
        axes.legend(fontsize=8)
    return figure


def experiment_metrics(reporting_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{experiment: best_model_metrics}`` for every experiment folder that has one.

    Each recipe env writes under its own ``experiment`` folder, so this is the table that
    compares recipes run on the same data.
    """
    found = sorted(Path(reporting_dir).glob("*/best_model_metrics.json"))
    return {path.parent.name: json.loads(path.read_text()) for path in found}
