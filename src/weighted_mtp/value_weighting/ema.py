"""Whitening statistics smoothed across steps (the ``EMA`` option of docs/METHOD.md).

Per-batch statistics are noisy when a batch holds few response tokens; an exponential moving
average makes a token's weight depend less on which other tokens happened to share its
batch. The state is plain Python numbers so it goes straight into a checkpoint.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from .distributed import all_reduce_sum
from .moments import masked_moments

logger = logging.getLogger(__name__)


class TDStatsEMA:
    """Running mean and variance of TD errors (or advantages) over training steps.

    Each :meth:`update` folds the global batch's mean and unbiased variance (summed over
    ranks when torch.distributed is initialised) into the running estimate:

    - warm-up, the first ``max(warmup_steps, 1)`` updates: the plain running average of the
      batch statistics seen so far (step k uses factor 1/k), so the first step uses exactly
      its batch statistics and early steps are not pulled towards an arbitrary prior;
    - afterwards: ``stat ← momentum·stat + (1 − momentum)·batch_stat``.

    The mean and the variance are averaged (not the std), as BatchNorm's running statistics
    are. A batch with fewer than two valid tokens (globally) has no variance: it leaves the
    state unchanged and does not count as a step. Before any update the statistics are
    (0.0, 1.0), i.e. no whitening.

    Each update costs one host sync (three numbers), which keeps the state in Python floats.

    Args:
        momentum: EMA momentum in [0, 1).
        warmup_steps: Number of updates averaged plainly before the EMA takes over.
    """

    def __init__(self, momentum: float = 0.99, warmup_steps: int = 10) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"TDStatsEMA: momentum must be in [0, 1), got {momentum}")
        if warmup_steps < 0:
            raise ValueError(f"TDStatsEMA: warmup_steps must be >= 0, got {warmup_steps}")
        self.momentum = float(momentum)
        self.warmup_steps = int(warmup_steps)
        self.steps = 0
        self.mean = 0.0
        self.var = 1.0

    @property
    def std(self) -> float:
        """Running standard deviation, sqrt of the running variance."""
        return math.sqrt(self.var)

    def update(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
        """Fold one batch into the running statistics and return those to use now.

        Args:
            x: TD errors or advantages, any shape.
            mask: Same shape as ``x``; non-zero marks valid tokens.

        Returns:
            ``(mean, std)`` to pass to :func:`build_weights` for this step.
        """
        if x.shape != mask.shape:
            raise ValueError(
                f"TDStatsEMA.update: expected mask of shape {tuple(x.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        # Every rank folds in the same global batch statistics: the one collective of the EMA.
        count, total, total_sq = all_reduce_sum(masked_moments(x, mask)).tolist()
        if count >= 2:
            batch_mean = total / count
            batch_var = max(total_sq - count * batch_mean * batch_mean, 0.0) / (count - 1)
            self.steps += 1
            if self.steps <= max(self.warmup_steps, 1):
                rate = 1.0 / self.steps
            else:
                rate = 1.0 - self.momentum
            self.mean += rate * (batch_mean - self.mean)
            self.var += rate * (batch_var - self.var)
        return self.mean, self.std

    def state_dict(self) -> dict[str, Any]:
        """Return the state as plain Python numbers (checkpoint-friendly)."""
        return {
            "momentum": self.momentum,
            "warmup_steps": self.warmup_steps,
            "steps": self.steps,
            "mean": self.mean,
            "var": self.var,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the running statistics written by :meth:`state_dict`.

        The momentum and warm-up of this instance (the current config) are kept; a warning
        says so when the checkpoint was written with different ones.

        Raises:
            ValueError: If a statistics key is missing.
        """
        missing = sorted({"steps", "mean", "var"} - set(state))
        if missing:
            raise ValueError(
                f"TDStatsEMA.load_state_dict: missing keys {missing}; got {sorted(state)}"
            )
        for key in ("momentum", "warmup_steps"):
            if key in state and state[key] != getattr(self, key):
                logger.warning(
                    "TDStatsEMA: checkpoint has %s=%s, config has %s; using the config",
                    key, state[key], getattr(self, key),
                )
        self.steps = int(state["steps"])
        self.mean = float(state["mean"])
        self.var = float(state["var"])
