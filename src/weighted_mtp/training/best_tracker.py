"""Track the monitored validation metric: improvement, patience and early stopping."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class BestTracker:
    """Remembers the best value of one metric (lower is better) across evaluations.

    Non-finite values never count as an improvement, so a diverging run cannot overwrite
    the best checkpoint.

    Attributes:
        monitor: Metric name without stage prefix, e.g. ``"val_loss"``.
        patience: Evaluations without improvement before warning (0 disables the warning).
        early_stopping: When True, :attr:`should_stop` turns True once patience is exceeded.
        best: Best value so far (``None`` before the first finite one).
        best_step: Global step of ``best``.
        bad_evaluations: Evaluations since the last improvement.
    """

    monitor: str = "val_loss"
    patience: int = 5
    early_stopping: bool = False
    best: float | None = None
    best_step: int | None = None
    bad_evaluations: int = 0
    should_stop: bool = field(default=False)

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Record one evaluation; return True when the monitored metric improved.

        Raises:
            KeyError: When ``metrics`` lacks the monitored key (a config typo would
                otherwise silently never save a best checkpoint).
        """
        if self.monitor not in metrics:
            raise KeyError(
                f"Monitored metric {self.monitor!r} not among evaluation metrics "
                f"{sorted(metrics)}; set training.monitor to one of them."
            )
        value = float(metrics[self.monitor])
        if math.isfinite(value) and (self.best is None or value < self.best):
            self.best, self.best_step, self.bad_evaluations = value, step, 0
            return True
        self.bad_evaluations += 1
        self._check_patience(value, step)
        return False

    def _check_patience(self, value: float, step: int) -> None:
        if self.patience <= 0 or self.bad_evaluations < self.patience:
            return
        log.warning(
            "%s has not improved for %d evaluation(s) (now %.4g at step %d, best %s at step %s).",
            self.monitor, self.bad_evaluations, value, step, self.best, self.best_step,
        )
        if self.early_stopping:
            self.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        """Plain-dict state for checkpoints."""
        return {
            "monitor": self.monitor,
            "best": self.best,
            "best_step": self.best_step,
            "bad_evaluations": self.bad_evaluations,
            "should_stop": self.should_stop,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; a different monitor restarts the tracking."""
        if state.get("monitor") != self.monitor:
            log.warning(
                "Checkpoint monitored %r, this run monitors %r: best value restarts.",
                state.get("monitor"), self.monitor,
            )
            return
        self.best = state["best"]
        self.best_step = state["best_step"]
        self.bad_evaluations = int(state["bad_evaluations"])
        self.should_stop = bool(state.get("should_stop", False))
