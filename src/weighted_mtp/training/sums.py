"""Token-weighted loss sums and the figures made from them.

Means are formed only at the end (Σ loss / Σ tokens), so micro-batches, evaluation
batches and ranks of different sizes combine exactly instead of as a mean of means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from weighted_mtp.training.objective import Objective
from weighted_mtp.value_weighting.distributed import all_reduce_sum


class LossSums:
    """Token-weighted sums of one step or one evaluation, in one fp64 vector.

    Means are formed only at the end (Σ loss / Σ tokens), so micro-batches, evaluation
    batches and — through :meth:`all_reduce` — ranks of different sizes combine exactly
    instead of as a mean of means. One vector means one host sync and one collective.
    """

    _EXTRA = ("value_sum", "value_count", "w_sum", "w_sq", "w_count", "w_low", "w_high", "tokens",
              "td_sum", "td_sq", "td_count")

    def __init__(self, n_heads: int, device: torch.device | str = "cpu") -> None:
        self.n_heads = n_heads
        self.buffer = torch.zeros(3 * n_heads + len(self._EXTRA), dtype=torch.float64, device=device)
        self.has_weights = False
        self.has_td = False

    def _slot(self, name: str) -> int:
        return 3 * self.n_heads + self._EXTRA.index(name)

    def add(self, name: str, value: torch.Tensor | float) -> None:
        """Add to an extra slot (``value_sum``, ``w_sum``, ``tokens``, …)."""
        self.buffer[self._slot(name)] += _as_f64(value)

    def add_head(self, head: int, weighted_sum: Any, unweighted_sum: Any, n_tokens: Any) -> None:
        """Add one head's Σ w·ce, Σ ce and token count."""
        self.buffer[head] += _as_f64(weighted_sum)
        self.buffer[self.n_heads + head] += _as_f64(unweighted_sum)
        self.buffer[2 * self.n_heads + head] += _as_f64(n_tokens)

    def add_weights(self, weights: torch.Tensor, valid: torch.Tensor, clip: tuple[float, float] | None) -> None:
        """Add the statistics of token weights over the ``valid`` positions."""
        self.has_weights = True
        mask = valid.bool()
        w = weights.detach().double()[mask]
        self.add("w_sum", w.sum())
        self.add("w_sq", (w * w).sum())
        self.add("w_count", w.numel())
        if clip is not None:
            low, high = clip
            self.add("w_low", (w <= low * (1 + 1e-6)).sum())
            self.add("w_high", (w >= high * (1 - 1e-6)).sum())

    def add_td(self, x: torch.Tensor, valid: torch.Tensor) -> None:
        """Add the moments of the TD errors (or GAE advantages) over the ``valid`` positions,
        before whitening: their raw scale says whether the critic's errors shrink."""
        self.has_td = True
        x = x.detach().double()[valid.bool()]
        self.add("td_sum", x.sum())
        self.add("td_sq", (x * x).sum())
        self.add("td_count", x.numel())

    def all_reduce(self) -> None:
        """Sum over ranks (identity without a multi-rank process group)."""
        self.buffer = all_reduce_sum(self.buffer)

    def totals(self) -> dict[str, Any]:
        """Host copy: ``{"weighted": [...], "unweighted": [...], "head_tokens": [...], extras}``."""
        values = self.buffer.tolist()
        n = self.n_heads
        totals: dict[str, Any] = {
            "weighted": values[:n], "unweighted": values[n : 2 * n], "head_tokens": values[2 * n : 3 * n]
        }
        totals.update(dict(zip(self._EXTRA, values[3 * n :])))
        return totals


def _as_f64(value: torch.Tensor | float) -> torch.Tensor | float:
    return value.detach().double() if isinstance(value, torch.Tensor) else float(value)


def summarize(sums: LossSums, objective: Objective) -> dict[str, float]:
    """Turn sums into figures: ``head{k}_loss``, ``mtp_loss``, ``weighted_mtp_loss``,
    ``value_loss``, ``loss``, ``tokens`` (input tokens seen),
    ``weights/{mean,std,clipped_low,clipped_high,ess}`` and ``td/{mean,std}``.

    ``head{k}_loss`` and ``mtp_loss`` are the plain (unweighted) CE, comparable across
    recipes; ``weighted_mtp_loss`` is what the stage optimises.
    """
    totals = sums.totals()
    figures: dict[str, float] = {}
    if objective.train_ce:
        figures.update(_ce_figures(totals))
    loss = figures.get("weighted_mtp_loss", 0.0)
    if objective.train_value or objective.report_value:
        count = totals["value_count"]
        figures["value_loss"] = totals["value_sum"] / count if count else 0.0
        if objective.train_value:
            loss += objective.value_coef * figures["value_loss"]
    figures["loss"] = loss
    figures["tokens"] = totals["tokens"]
    if sums.has_weights:
        figures.update(_weight_figures(totals))
    if sums.has_td:
        figures.update(_td_figures(totals))
    return figures


def _ce_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    weighted, unweighted = [], []
    for k, (w_sum, u_sum, n) in enumerate(zip(totals["weighted"], totals["unweighted"], totals["head_tokens"])):
        if n > 0:
            figures[f"head{k}_loss"] = u_sum / n
            weighted.append(w_sum / n)
            unweighted.append(u_sum / n)
    figures["mtp_loss"] = sum(unweighted) / len(unweighted) if unweighted else 0.0
    figures["weighted_mtp_loss"] = sum(weighted) / len(weighted) if weighted else 0.0
    return figures


def _weight_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    count = totals["w_count"]
    if count == 0:
        return {"weights/mean": 0.0, "weights/std": 0.0, "weights/clipped_low": 0.0,
                "weights/clipped_high": 0.0, "weights/ess": 0.0}
    mean = totals["w_sum"] / count
    var = max(0.0, totals["w_sq"] / count - mean * mean) * count / max(count - 1, 1)
    return {
        "weights/mean": mean,
        "weights/std": math.sqrt(var),
        "weights/clipped_low": totals["w_low"] / count,
        "weights/clipped_high": totals["w_high"] / count,
        "weights/ess": _ess_fraction(totals["w_sum"], totals["w_sq"], count),
    }


def _ess_fraction(w_sum: float, w_sq: float, count: float) -> float:
    """Kish's effective sample size (Σw)² / Σw² as a fraction of the ``count`` tokens.

    1 means uniform weights; a small value means a few tokens carry the gradient, the
    failure mode a too-small β produces. 0 when every weight is 0.
    """
    return (w_sum * w_sum) / (w_sq * count) if w_sq > 0 else 0.0


def _td_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    count = totals["td_count"]
    if count == 0:
        return {"td/mean": 0.0, "td/std": 0.0}
    mean = totals["td_sum"] / count
    var = max(0.0, totals["td_sq"] / count - mean * mean) * count / max(count - 1, 1)
    return {"td/mean": mean, "td/std": math.sqrt(var)}
