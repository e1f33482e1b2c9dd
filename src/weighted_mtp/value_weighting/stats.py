"""Summaries of TD errors and token weights for logging.

These answer "is the critic saying anything?" (spread of δ) and "how much of the batch is the
weighted loss really training on?" (clipping fractions, effective sample size). They are
computed on this rank's tokens only, with one device-to-host copy, and returned as Python
floats ready for a metrics logger. Undefined entries (no valid tokens, or a std of one
token) are NaN.
"""

from __future__ import annotations

import math

import torch

CLIP_EPS = 1e-6
QUANTILES = (("p10", 0.10), ("p50", 0.50), ("p90", 0.90))


def compute_td_stats(x: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Distribution of ``x`` (TD errors or advantages) over the valid tokens.

    Args:
        x: Tensor of any shape.
        mask: Same shape; non-zero marks valid tokens.

    Returns:
        ``n_tokens``, ``mean``, ``std`` (unbiased), ``min``, ``max``, ``p10``, ``p50``,
        ``p90``.

    Raises:
        ValueError: If the shapes differ.
    """
    return _distribution(_valid_values(x, mask, "compute_td_stats"))


def compute_weight_stats(
    w: torch.Tensor, mask: torch.Tensor, min_weight: float, max_weight: float
) -> dict[str, float]:
    """Distribution, clipping and effective sample size of token weights.

    The effective sample size ESS = (Σw)²/Σw² is the number of equally weighted tokens
    that would give the same variance of a weighted mean: n for uniform weights, 1 when a
    single token carries all the weight.

    Args:
        w: Weights, any shape.
        mask: Same shape; non-zero marks valid tokens.
        min_weight: Lower clip bound used to build ``w``.
        max_weight: Upper clip bound used to build ``w``.

    Returns:
        The keys of :func:`compute_td_stats` plus ``clipped_low_frac`` (w ≤ min + 1e-6),
        ``clipped_high_frac`` (w ≥ max − 1e-6), ``ess`` and ``ess_frac`` (ESS / n_tokens).

    Raises:
        ValueError: If the shapes differ.
    """
    values = _valid_values(w, mask, "compute_weight_stats")
    stats = _distribution(values)
    n = values.numel()
    if n == 0:
        nan = math.nan
        stats.update(clipped_low_frac=nan, clipped_high_frac=nan, ess=0.0, ess_frac=nan)
        return stats
    total, total_sq = values.sum().item(), (values * values).sum().item()
    ess = total * total / total_sq if total_sq > 0 else 0.0
    stats.update(
        clipped_low_frac=(values <= min_weight + CLIP_EPS).double().mean().item(),
        clipped_high_frac=(values >= max_weight - CLIP_EPS).double().mean().item(),
        ess=ess,
        ess_frac=ess / n,
    )
    return stats


def _valid_values(x: torch.Tensor, mask: torch.Tensor, where: str) -> torch.Tensor:
    """Copy ``x`` and ``mask`` to the host once and return the valid values in float64."""
    if x.shape != mask.shape:
        raise ValueError(
            f"{where}: expected mask of shape {tuple(x.shape)}, got {tuple(mask.shape)}"
        )
    both = torch.stack([x.detach().to(torch.float64), (mask != 0).to(torch.float64)])
    host = both.cpu()  # the single device-to-host copy
    return host[0][host[1] != 0]


def _distribution(values: torch.Tensor) -> dict[str, float]:
    """Count, moments, extremes and quantiles of a 1-D float64 CPU tensor."""
    n = values.numel()
    nan = math.nan
    if n == 0:
        stats = dict(n_tokens=0.0, mean=nan, std=nan, min=nan, max=nan)
        stats.update({name: nan for name, _ in QUANTILES})
        return stats
    levels = torch.tensor([q for _, q in QUANTILES], dtype=torch.float64)
    quantiles = torch.quantile(values, levels).tolist()
    stats = dict(
        n_tokens=float(n),
        mean=values.mean().item(),
        std=values.std().item() if n > 1 else nan,
        min=values.min().item(),
        max=values.max().item(),
    )
    stats.update({name: q for (name, _), q in zip(QUANTILES, quantiles)})
    return stats
