"""The MTP loss on full ``(B, S, n, V)`` logits: the oracle the per-head path is tested
against. Training never builds all heads' logits at once (``backward_per_head``), so this
lives with the tests, built from the same ``mtp_head_loss`` the training uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from weighted_mtp.training.losses import HeadLoss, mtp_head_loss
from weighted_mtp.value_weighting.validation import require_shape


@dataclass(frozen=True)
class MTPLoss:
    """All heads' losses and their means over the heads that have valid targets.

    Attributes:
        head_weighted: Per head (offset 1..n), weighted loss L_k.
        head_unweighted: Per head, plain CE mean.
        head_tokens: Per head, number of valid targets (0-dim int64).
        weighted: Mean of ``head_weighted`` over heads with valid targets (the loss to
            optimise); 0 when no head has any.
        unweighted: Same mean of ``head_unweighted``.
        head_weighted_sum: Per head, Σ w·ce (for token-weighted averages across batches).
        head_unweighted_sum: Per head, Σ ce.
    """

    head_weighted: tuple[torch.Tensor, ...]
    head_unweighted: tuple[torch.Tensor, ...]
    head_tokens: tuple[torch.Tensor, ...]
    weighted: torch.Tensor
    unweighted: torch.Tensor
    head_weighted_sum: tuple[torch.Tensor, ...]
    head_unweighted_sum: tuple[torch.Tensor, ...]


def combine_head_losses(heads: Sequence[HeadLoss]) -> MTPLoss:
    """Average per-head losses over the heads with any valid target.

    A head without targets (a batch shorter than its offset) contributes 0 and is left out
    of the mean rather than dragging it towards 0.

    Args:
        heads: One :class:`HeadLoss` per head, in offset order (1..n).

    Returns:
        An :class:`MTPLoss`.

    Raises:
        ValueError: If ``heads`` is empty.
    """
    if not heads:
        raise ValueError("combine_head_losses: expected at least one head, got none")
    present = torch.stack([(h.n_tokens > 0) for h in heads]).float()  # (n,)
    n_present = present.sum().clamp(min=1.0)
    weighted = (torch.stack([h.weighted for h in heads]) * present).sum() / n_present
    unweighted = (torch.stack([h.unweighted for h in heads]) * present).sum() / n_present
    return MTPLoss(
        head_weighted=tuple(h.weighted for h in heads),
        head_unweighted=tuple(h.unweighted for h in heads),
        head_tokens=tuple(h.n_tokens for h in heads),
        weighted=weighted,
        unweighted=unweighted,
        head_weighted_sum=tuple(h.weighted_sum for h in heads),
        head_unweighted_sum=tuple(h.unweighted_sum for h in heads),
    )


def mtp_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> MTPLoss:
    """MTP loss from the full logits of all heads.

    Args:
        logits: ``(B, S, n, V)``; head index h has offset h + 1.
        labels: ``(B, S)`` token ids, ``-100`` where ignored.
        weights: Optional target-indexed weights, ``(B, S)`` shared by all heads (TD
            weights) or ``(B, S, n)`` one column per head (Rho-1 selects per head).

    Returns:
        An :class:`MTPLoss`.

    Raises:
        ValueError: On bad shapes.
    """
    if logits.dim() != 4:
        raise ValueError(
            f"mtp_loss: expected logits of shape (B, S, n, V), got {tuple(logits.shape)}"
        )
    batch, seq, n_heads, _ = logits.shape
    per_head = _split_head_weights(weights, batch, seq, n_heads)
    heads = [
        mtp_head_loss(logits[:, :, h], labels, h + 1, per_head[h]) for h in range(n_heads)
    ]
    return combine_head_losses(heads)


def _split_head_weights(
    weights: torch.Tensor | None, batch: int, seq: int, n_heads: int
) -> list[torch.Tensor | None]:
    """One ``(B, S)`` weight tensor (or None) per head from ``(B, S)`` or ``(B, S, n)``."""
    if weights is None or weights.dim() == 2:
        return [weights] * n_heads
    require_shape(weights, (batch, seq, n_heads), "weights", "mtp_loss")
    return [weights[:, :, h] for h in range(n_heads)]
