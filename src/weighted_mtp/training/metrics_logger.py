"""The one metrics logger the training loops call, and its backends.

Loops never talk to the console, MLflow or files directly: they call
``logger.log_metrics({...}, step)`` on a :class:`MetricsLogger`, which forwards to each
backend. Adding a destination (MLflow, TensorBoard) means writing a class with the three
methods of :class:`MetricsBackend` and passing it in ``backends``.

Keys are ``{stage}/…`` (see docs/TRAINING.md for the full list), e.g.
``stage2/train/loss``, ``stage2/train/head0_loss``, ``stage2/lr``, ``stage2/val_loss``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

_STAGE_LABELS = {"pretrain": "Pretrain", "stage1": "Stage 1", "stage2": "Stage 2"}
_HEAD_KEY = re.compile(r"^train/head(\d+)_loss$")


@runtime_checkable
class MetricsBackend(Protocol):
    """A destination for metrics and parameters."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` (already prefixed by stage) at global step ``step``."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record run parameters (flat ``key -> value``)."""

    def close(self) -> None:
        """Flush and release resources."""


class MetricsLogger:
    """Composite logger: forwards every call to each backend, only on the main rank.

    Args:
        backends: Destinations; ``None`` gives console + in-memory history.
        is_main: False on non-zero ranks, which then log nothing (rank-aware by design,
            so loops call it unconditionally).
    """

    def __init__(self, backends: Iterable[MetricsBackend] | None = None, is_main: bool = True) -> None:
        self.backends: list[MetricsBackend] = (
            list(backends) if backends is not None else [ConsoleBackend(), HistoryBackend()]
        )
        self.is_main = is_main

    def add_backend(self, backend: MetricsBackend) -> None:
        """Add a destination (e.g. the MLflow backend) after construction."""
        self.backends.append(backend)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Send ``metrics`` at global step ``step`` to every backend (main rank only)."""
        if not self.is_main:
            return
        clean = {key: float(value) for key, value in metrics.items()}
        for backend in self.backends:
            backend.log_metrics(clean, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Send flat run parameters to every backend (main rank only)."""
        if not self.is_main:
            return
        for backend in self.backends:
            backend.log_params(params)

    def close(self) -> None:
        """Close every backend."""
        for backend in self.backends:
            backend.close()

    def history(self) -> list[dict[str, float]]:
        """Rows of the first :class:`HistoryBackend`, or ``[]`` when there is none."""
        for backend in self.backends:
            if isinstance(backend, HistoryBackend):
                return backend.rows
        return []


class HistoryBackend:
    """Keeps every logged row in memory so a node can return or write ``metrics.json``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.params: dict[str, Any] = {}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Append ``{"step": step, **metrics}``."""
        self.rows.append({"step": step, **metrics})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into :attr:`params`."""
        self.params.update(params)

    def close(self) -> None:
        """Nothing to release."""

    def latest(self) -> dict[str, float]:
        """Last value of every key logged so far (the figures a run ends with)."""
        merged: dict[str, float] = {}
        for row in self.rows:
            merged.update({key: value for key, value in row.items() if key != "step"})
        return merged

    def write_json(self, path: str | Path) -> Path:
        """Write ``{"history": rows, "final": latest(), "params": params}`` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"history": self.rows, "final": self.latest(), "params": self.params}
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        return path


class ConsoleBackend:
    """Formats training and validation figures as readable blocks through ``logging``.

    A training row (keys ``{stage}/train/...``) becomes::

        [Stage 2] Step 100  epoch 0.41  lr 9.8e-06
          Head 0 loss: 2.3456   Head 1 loss: 2.4123   Head 2 loss: 2.5678   Head 3 loss: 2.3890
          Avg MTP loss: 2.4287   Value loss: 0.1234   Total loss: 1.2761
          weights: mean 1.02  std 0.71  clipped low 3.1%  high 0.4%   tokens/s 5200

    (lines whose figures the stage does not produce are left out) and a validation row
    (keys ``{stage}/val_...``) one line ``[Stage 2] Step 100  validation  loss ...``.

    Args:
        logger_name: The ``logging`` logger written to.
        level: Log level of the blocks.
    """

    def __init__(self, logger_name: str = "weighted_mtp.training", level: int = logging.INFO) -> None:
        self._log = logging.getLogger(logger_name)
        self._level = level

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log one block per stage present in ``metrics``."""
        for stage, figures in _split_by_stage(metrics).items():
            if any(key.startswith("train/") for key in figures):
                self._log.log(self._level, format_train_block(stage, step, figures))
            if any(key.startswith("val_") for key in figures):
                self._log.log(self._level, format_val_line(stage, step, figures))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters are not echoed to the console (MLflow and metrics.json keep them)."""

    def close(self) -> None:
        """Nothing to release."""


def _split_by_stage(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``{"stage2/train/loss": x}`` → ``{"stage2": {"train/loss": x}}``."""
    grouped: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        stage, _, rest = key.partition("/")
        if rest:
            grouped.setdefault(stage, {})[rest] = value
    return grouped


def stage_label(stage: str) -> str:
    """``"stage2"`` → ``"Stage 2"`` (unknown stages are shown as given)."""
    return _STAGE_LABELS.get(stage, stage)


def format_train_block(stage: str, step: int, figures: Mapping[str, float]) -> str:
    """Format the console block of one training log (see :class:`ConsoleBackend`)."""
    lines = [f"[{stage_label(stage)}] Step {step}  epoch {figures.get('epoch', 0.0):.2f}"
             f"  lr {figures.get('lr', 0.0):.1e}"]
    heads = sorted(
        (int(match.group(1)), value)
        for key, value in figures.items()
        if (match := _HEAD_KEY.match(key))
    )
    if heads:
        lines.append("  " + "   ".join(f"Head {k} loss: {value:.4f}" for k, value in heads))
    losses = []
    if "train/mtp_loss" in figures:
        losses.append(f"Avg MTP loss: {figures['train/mtp_loss']:.4f}")
    if "train/value_loss" in figures:
        losses.append(f"Value loss: {figures['train/value_loss']:.4f}")
    if "train/loss" in figures:
        losses.append(f"Total loss: {figures['train/loss']:.4f}")
    if losses:
        lines.append("  " + "   ".join(losses))
    throughput = f"tokens/s {figures.get('tokens_per_s', 0.0):.0f}"
    if "weights/mean" in figures:
        lines.append(
            f"  weights: mean {figures['weights/mean']:.2f}  std {figures.get('weights/std', 0.0):.2f}"
            f"  clipped low {100 * figures.get('weights/clipped_low', 0.0):.1f}%"
            f"  high {100 * figures.get('weights/clipped_high', 0.0):.1f}%   {throughput}"
        )
    else:
        lines.append(f"  {throughput}")
    return "\n".join(lines)


def format_val_line(stage: str, step: int, figures: Mapping[str, float]) -> str:
    """Format the one-line validation summary of one evaluation."""
    parts = [f"[{stage_label(stage)}] Step {step}  validation"]
    names = (
        ("val_loss", "loss"),
        ("val_mtp_loss", "mtp"),
        ("val_value_loss", "value"),
        ("val_value_explained_variance", "expl.var"),
        ("val_value_auroc", "AUROC"),
        ("val_value_auroc_within_problem", "within-problem"),
        ("val_bug_hit_rate", "bug hit"),
        ("val_bug_hit_chance", "chance"),
        ("val_bug_hit_rate_program", "bug hit (program)"),
    )
    parts.extend(f"{label} {figures[key]:.4f}" for key, label in names if key in figures)
    return "  ".join(parts)
