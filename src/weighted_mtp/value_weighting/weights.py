"""Token weights from TD errors or advantages (docs/METHOD.md, ``build_weights``).

Whitening makes β mean the same thing whatever the critic's scale: a token one standard
deviation better than the batch gets weight e^(1/β). Clipping bounds the influence of any
one token (and keeps bad tokens from vanishing entirely), so the weighted loss stays a
bounded reweighting of the ordinary MTP loss.
"""

from __future__ import annotations

import torch

from .moments import masked_moments, mean_std_from_moments
from .validation import float_dtype, require_shape

WHITEN_EPS = 1e-8


def build_weights(
    x: torch.Tensor,
    loss_mask: torch.Tensor,
    beta: float,
    min_weight: float,
    max_weight: float,
    mean: float | torch.Tensor | None = None,
    std: float | torch.Tensor | None = None,
    normalize_mean: bool = False,
) -> torch.Tensor:
    """Whitened exponential token weights, clipped and masked.

    z = (x − μ)/(σ + 1e-8), w = clamp(exp(z/β), min_weight, max_weight)·m.

    μ and σ are ``mean``/``std`` when both are given (e.g. from :class:`TDStatsEMA`, or the
    statistics of the global batch that ``training.step.td_weights`` sums over ranks),
    otherwise the mean and unbiased std of x over the mask. The function is pure: it never
    talks to other ranks.

    If the batch has at most one valid token, or the statistics come from at most one token
    (σ is NaN), whitening is undefined and the weights are the mask itself.

    No gradient flows: the inputs are detached, because weights are constants of the
    policy loss and must not train the critic.

    Args:
        x: ``(B, S)`` TD errors or advantages.
        loss_mask: ``(B, S)``, non-zero on response tokens.
        beta: Temperature β > 0; smaller means sharper weights.
        min_weight: Lower clip bound (≥ 0).
        max_weight: Upper clip bound (≥ ``min_weight``).
        mean: Optional whitening mean; used only together with ``std``.
        std: Optional whitening std (≥ 0); used only together with ``mean``.
        normalize_mean: Rescale the clipped weights to mean 1 over this rank's mask (the
            result may then exceed the clip bounds).

    Returns:
        ``(B, S)`` weights, zero outside the mask, in fp32 (fp64 if ``x`` is fp64).

    Raises:
        ValueError: On mismatched shapes or invalid ``beta``/clip bounds/``std``.
    """
    if x.dim() != 2:
        raise ValueError(f"build_weights: expected x of shape (B, S), got {tuple(x.shape)}")
    require_shape(loss_mask, x.shape, "loss_mask", "build_weights")
    _check_parameters(beta, min_weight, max_weight, std)
    dtype = float_dtype(x)
    x = x.detach().to(dtype)
    valid = loss_mask.detach() != 0
    mask = valid.to(dtype)
    n_local = valid.sum()

    if mean is None or std is None:
        moments = masked_moments(x, valid)
        mu, sigma = mean_std_from_moments(moments)
        too_few = (n_local <= 1) | (moments[0] <= 1)
    else:
        mu = torch.as_tensor(mean, dtype=torch.float64, device=x.device)
        sigma = torch.as_tensor(std, dtype=torch.float64, device=x.device)
        too_few = (n_local <= 1) | torch.isnan(sigma)
    z = (x - mu.to(dtype)) / (sigma.to(dtype) + WHITEN_EPS)
    weights = torch.exp(z / beta).clamp(min_weight, max_weight)
    weights = torch.where(valid, weights, 0.0)
    weights = torch.where(too_few, mask, weights)
    if normalize_mean:
        total = weights.sum()
        scale = torch.where(total > 0, n_local.to(dtype) / total, 1.0)
        weights = weights * scale
    return weights


def _check_parameters(
    beta: float, min_weight: float, max_weight: float, std: float | torch.Tensor | None
) -> None:
    """Raise ``ValueError`` for parameters that would make the weights meaningless."""
    if not beta > 0:
        raise ValueError(f"build_weights: beta must be > 0, got {beta}")
    if not 0 <= min_weight <= max_weight:
        raise ValueError(
            "build_weights: expected 0 <= min_weight <= max_weight, "
            f"got min_weight={min_weight}, max_weight={max_weight}"
        )
    if isinstance(std, (int, float)) and std < 0:
        raise ValueError(f"build_weights: std must be >= 0, got {std}")
