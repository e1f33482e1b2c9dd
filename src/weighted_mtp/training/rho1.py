"""Rho-1 token selection (Lin et al. 2024, "Not All Tokens Are What You Need").

Rho-1 trains only on the tokens where the policy is furthest behind a reference model trained
on clean data: the tokens with the largest excess loss, policy CE − reference CE. Those are
the tokens that are learnable (the reference gets them) but not yet learned.
"""

from __future__ import annotations

import math

import torch

from weighted_mtp.value_weighting.validation import require_shape

# Subtracted before ceil so that k·n computed in floating point (0.6·10 = 6.000000000000001)
# does not round a whole number of tokens up by one.
_CEIL_SLACK = 1e-9


def rho1_select(excess: torch.Tensor, valid: torch.Tensor, k_percent: float) -> torch.Tensor:
    """Weight 1 on the top ``k_percent`` of valid tokens by excess loss, 0 elsewhere.

    The selection is over the whole batch (not per row), so rows the policy already fits
    well may get no tokens at all, as in Rho-1. The number selected is exactly
    ``ceil(k_percent · n_valid)`` (at least 1 when any token is valid). Ties are broken by
    position: among equal excess values, the token earlier in the flattened (row-major)
    batch wins, so the count is exact and the result deterministic. Runs on device with no
    host sync.

    Args:
        excess: ``(B, S)`` policy CE − reference CE, target-indexed (one head's).
        valid: ``(B, S)`` non-zero where the target is valid.
        k_percent: Fraction of valid tokens to keep, in (0, 1] (0.6 keeps 60%).

    Returns:
        ``(B, S)`` float32 tensor of 0s and 1s.

    Raises:
        ValueError: On mismatched shapes or ``k_percent`` outside (0, 1].
    """
    if excess.dim() != 2:
        raise ValueError(f"rho1_select: expected excess of shape (B, S), got {tuple(excess.shape)}")
    require_shape(valid, excess.shape, "valid", "rho1_select")
    if not 0.0 < k_percent <= 1.0:
        hint = f" (did you mean {k_percent / 100}?)" if 1.0 < k_percent <= 100.0 else ""
        raise ValueError(
            f"rho1_select: k_percent must be a fraction in (0, 1], got {k_percent}{hint}"
        )

    flat_valid = (valid != 0).reshape(-1)
    key = torch.nan_to_num(excess.detach().reshape(-1).to(torch.float64), nan=-math.inf)
    # Two stable sorts: by excess (descending), then valid tokens before invalid ones; the
    # stable order keeps equal keys in index order.
    by_excess = torch.sort(key, descending=True, stable=True).indices
    valid_first = torch.sort(flat_valid[by_excess].to(torch.int8), descending=True, stable=True)
    order = by_excess[valid_first.indices]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)

    n_valid = flat_valid.sum().to(torch.float64)
    count = torch.ceil(n_valid * k_percent - _CEIL_SLACK).clamp(min=1.0)
    selected = flat_valid & (rank < count)
    return selected.to(torch.float32).view_as(excess)
