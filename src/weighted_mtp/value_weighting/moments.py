"""Masked raw moments and the mean/std they imply.

Statistics are accumulated as (count, Σx, Σx²) in float64 so that a caller can sum them over
ranks (``all_reduce_sum`` from :mod:`.distributed`, where the reduction is visible) and turn
them into a mean and an unbiased std without a host sync; float64 keeps ``Σx² − n·μ²``
accurate for the token counts of a large batch. Nothing here talks to other ranks.
"""

from __future__ import annotations

import torch



def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return ``[count, Σx, Σx²]`` over ``mask`` in float64, on this rank's data.

    Args:
        x: Tensor of any shape.
        mask: Tensor of the same shape; non-zero marks a valid element.

    Returns:
        A float64 tensor of shape ``(3,)`` on ``x``'s device.
    """
    valid = mask != 0
    x64 = torch.where(valid, x.detach().to(torch.float64), 0.0)
    return torch.stack([valid.sum().to(torch.float64), x64.sum(), (x64 * x64).sum()])


def mean_std_from_moments(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn ``[count, Σx, Σx²]`` into the mean and the unbiased (n − 1) std.

    With fewer than two elements the std is NaN (and the mean NaN when the count is 0);
    callers decide what that means for them.

    Args:
        moments: Output of :func:`masked_moments`.

    Returns:
        ``(mean, std)`` as 0-dim float64 tensors.
    """
    count, total, total_sq = moments.unbind()
    mean = total / count
    # Clamp: rounding can make the centred sum of squares slightly negative.
    centred_sq = (total_sq - count * mean * mean).clamp(min=0.0)
    std = torch.sqrt(centred_sq / (count - 1.0))
    return mean, std
