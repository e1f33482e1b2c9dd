"""Multi-token-prediction and value losses (docs/METHOD.md).

Everything per token is indexed by the **target** position: the head with offset k (1..n)
at position t predicts labels[t + k], and its cross-entropy lives at index t + k of a
``(B, S)`` tensor. A token's weight is then one number, w[:, t + k], that applies to every
head predicting it: a token's importance is a property of the token, not of the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from weighted_mtp.training.rho1 import rho1_select
from weighted_mtp.value_weighting.distributed import all_reduce_sum
from weighted_mtp.value_weighting.validation import require_shape, values_2d

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "ExplainedVarianceAccumulator",
    "HeadLoss",
    "ValueLoss",
    "mtp_head_loss",
    "per_token_ce",
    "rho1_excess",
    "rho1_select",
    "value_loss",
    "value_state_mask",
]


@dataclass(frozen=True)
class HeadLoss:
    """One head's loss: means over its valid targets, plus sums and count for averaging.

    Attributes:
        weighted: Σ w·ce / n (scalar with grad); 0 when n = 0.
        unweighted: Σ ce / n (scalar with grad); 0 when n = 0.
        weighted_sum: Σ w·ce over valid targets (scalar with grad).
        unweighted_sum: Σ ce over valid targets (scalar with grad).
        n_tokens: n, the number of valid targets (0-dim int64).
    """

    weighted: torch.Tensor
    unweighted: torch.Tensor
    weighted_sum: torch.Tensor
    unweighted_sum: torch.Tensor
    n_tokens: torch.Tensor


@dataclass(frozen=True)
class ValueLoss:
    """Value regression loss over response-emitting states.

    Attributes:
        loss: sum / count (scalar with grad); 0 when count = 0.
        sum: Σ of the per-state losses (scalar with grad).
        count: Number of states (0-dim int64).
    """

    loss: torch.Tensor
    sum: torch.Tensor
    count: torch.Tensor


def per_token_ce(
    head_logits: torch.Tensor, labels: torch.Tensor, offset: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of one head, indexed by target position.

    ce[:, t] = CE(head_logits[:, t − offset], labels[:, t]) for t ≥ offset, computed in
    fp32 whatever the logits' dtype (bf16 log-softmax over 32k classes loses digits).

    Args:
        head_logits: ``(B, S, V)`` logits of the head with this offset.
        labels: ``(B, S)`` token ids, ``-100`` where there is nothing to predict.
        offset: k ≥ 1: the head predicts the token k positions ahead.

    Returns:
        ``(ce, valid)``: ``(B, S)`` fp32 CE (0 where invalid; keeps the graph) and
        ``(B, S)`` bool, True where labels[:, t] is a target (t ≥ offset, label ≠ -100).

    Raises:
        ValueError: On bad shapes or ``offset < 1``.
    """
    if head_logits.dim() != 3:
        raise ValueError(
            f"per_token_ce: expected head_logits of shape (B, S, V), got {tuple(head_logits.shape)}"
        )
    batch, seq, vocab = head_logits.shape
    require_shape(labels, (batch, seq), "labels", "per_token_ce")
    if offset < 1:
        raise ValueError(f"per_token_ce: offset must be >= 1, got {offset}")
    shift = min(offset, seq)
    logits = head_logits[:, : seq - shift].reshape(-1, vocab).float()  # (B·(S−k), V)
    targets = labels[:, shift:]  # (B, S−k)
    ce = F.cross_entropy(logits, targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
    ce = ce.view(batch, seq - shift)
    lead = ce.new_zeros(batch, shift)
    valid_lead = torch.zeros(batch, shift, dtype=torch.bool, device=labels.device)
    return torch.cat([lead, ce], dim=1), torch.cat([valid_lead, targets != IGNORE_INDEX], dim=1)


def mtp_head_loss(
    head_logits: torch.Tensor,
    labels: torch.Tensor,
    offset: int,
    weights: torch.Tensor | None = None,
) -> HeadLoss:
    """Loss of one head: L_k = Σ w·ce·m_k / Σ m_k over its valid targets.

    This is the per-head path (one head's logits at a time, as ``backward_per_head`` does to
    keep peak memory at O(V)); the tests check it against the same loss on full (B, S, n, V) logits.

    Args:
        head_logits: ``(B, S, V)`` logits of the head with this offset.
        labels: ``(B, S)`` token ids, ``-100`` where ignored.
        offset: k ≥ 1.
        weights: Optional ``(B, S)`` target-indexed token weights, treated as constants
            (detached). None means 1.

    Returns:
        A :class:`HeadLoss`.

    Raises:
        ValueError: On bad shapes.
    """
    ce, valid = per_token_ce(head_logits, labels, offset)
    unweighted_sum = ce.sum()  # ce is already 0 at invalid targets
    if weights is None:
        weighted_sum = unweighted_sum
    else:
        require_shape(weights, labels.shape, "weights", "mtp_head_loss")
        # Zero the weights first: a NaN weight on a non-target would poison the gradient.
        w = torch.where(valid, weights.detach().to(ce.dtype), 0.0)
        weighted_sum = (w * ce).sum()
    n_tokens = valid.sum()
    denominator = n_tokens.clamp(min=1).to(ce.dtype)
    return HeadLoss(
        weighted=weighted_sum / denominator,
        unweighted=unweighted_sum / denominator,
        weighted_sum=weighted_sum,
        unweighted_sum=unweighted_sum,
        n_tokens=n_tokens,
    )


def rho1_excess(
    policy_head_logits: torch.Tensor,
    reference_head_logits: torch.Tensor,
    labels: torch.Tensor,
    offset: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Excess loss of one head, policy CE − reference CE on the same targets (no grad).

    Args:
        policy_head_logits: ``(B, S, V)`` policy logits of the head with this offset.
        reference_head_logits: ``(B, S, V)`` reference logits of the same head.
        labels: ``(B, S)`` token ids, ``-100`` where ignored.
        offset: k ≥ 1.

    Returns:
        ``(excess, valid)``, both ``(B, S)`` and target-indexed; excess is 0 where invalid.
        Pass them to :func:`rho1_select`.
    """
    with torch.no_grad():
        policy_ce, valid = per_token_ce(policy_head_logits, labels, offset)
        reference_ce, _ = per_token_ce(reference_head_logits, labels, offset)
    return torch.where(valid, policy_ce - reference_ce, 0.0), valid


def value_state_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """States that emit a response token: state_mask[:, t] = loss_mask[:, t + 1].

    V_t is read after token t, so the states that decide the response are the last prompt
    position p − 1 through T − 1 (the state after the last token emits nothing).

    Args:
        loss_mask: ``(B, S)``, non-zero on response tokens.

    Returns:
        ``(B, S)`` mask of the same dtype, positions p − 1..T − 1.
    """
    if loss_mask.dim() != 2:
        raise ValueError(
            f"value_state_mask: expected loss_mask of shape (B, S), got {tuple(loss_mask.shape)}"
        )
    return torch.cat([loss_mask[:, 1:], torch.zeros_like(loss_mask[:, :1])], dim=1)


def _squared_error(values: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    return (values - target) ** 2


def _huber(values: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    return F.huber_loss(values, target, reduction="none", delta=delta)


_VALUE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "mse": _squared_error,
    "huber": _huber,
}


def value_loss(
    values: torch.Tensor,
    rewards: torch.Tensor,
    loss_mask: torch.Tensor,
    kind: str = "mse",
    huber_delta: float = 1.0,
    targets: torch.Tensor | None = None,
) -> ValueLoss:
    """Regress the value of every response-emitting state to the row's outcome R
    (or to per-state ``targets``, e.g. :func:`first_error_targets`).

    Per state: ``mse`` is (V − R)²; ``huber`` is torch's Huber loss, ½(V − R)² inside
    ``huber_delta`` and linear outside. Computed in fp32.

    Args:
        values: ``(B, S)`` or ``(B, S, 1)`` value-head outputs (with grad).
        rewards: ``(B,)`` outcomes.
        loss_mask: ``(B, S)`` response mask; the states are :func:`value_state_mask`.
        kind: ``"mse"`` or ``"huber"``.
        huber_delta: Huber threshold (> 0).
        targets: Optional ``(B, S)`` per-state targets replacing R.

    Returns:
        A :class:`ValueLoss`.

    Raises:
        ValueError: On bad shapes, an unknown ``kind`` or ``huber_delta <= 0``.
    """
    if kind not in _VALUE_LOSSES:
        raise ValueError(f"value_loss: kind must be one of {sorted(_VALUE_LOSSES)}, got {kind!r}")
    if not huber_delta > 0:
        raise ValueError(f"value_loss: huber_delta must be > 0, got {huber_delta}")
    v = values_2d(values).float()
    batch, seq = v.shape
    require_shape(loss_mask, (batch, seq), "loss_mask", "value_loss")
    require_shape(rewards, (batch,), "rewards", "value_loss")
    states = value_state_mask(loss_mask) != 0
    if targets is None:
        target = rewards.detach().to(v.dtype).unsqueeze(1).expand(batch, seq)
    else:
        require_shape(targets, (batch, seq), "targets", "value_loss")
        target = targets.detach().to(v.dtype)
    per_state = _VALUE_LOSSES[kind](v, target, huber_delta)
    total = torch.where(states, per_state, 0.0).sum()
    count = states.sum()
    return ValueLoss(loss=total / count.clamp(min=1).to(v.dtype), sum=total, count=count)


class ExplainedVarianceAccumulator:
    """Explained variance 1 − Var(R − V)/Var(R) over a whole evaluation.

    Keeps the summed moments (count, ΣR, ΣR², Σe, Σe², e = R − V) in float64 on the values'
    device, so updates cost no host sync and batches of any size combine exactly; they are
    summed over ranks in :meth:`compute` when torch.distributed is initialised.

    Convention: when Var(R) is 0 (all outcomes equal, or no states) the ratio is undefined
    and :meth:`compute` returns NaN, as stable-baselines does.

    Args:
        device: Where to keep the moments before the first update (needed only for a rank
            that may see no batch under NCCL); defaults to the first update's device.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self._device = device
        self._moments: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._moments = None

    def update(self, values: torch.Tensor, rewards: torch.Tensor, state_mask: torch.Tensor) -> None:
        """Add one batch of states.

        Args:
            values: ``(B, S)`` or ``(B, S, 1)`` predictions (detached here).
            rewards: ``(B,)`` outcomes.
            state_mask: ``(B, S)`` states to count, usually :func:`value_state_mask`.
        """
        v = values_2d(values).detach().to(torch.float64)
        batch, seq = v.shape
        require_shape(state_mask, (batch, seq), "state_mask", "ExplainedVarianceAccumulator.update")
        require_shape(rewards, (batch,), "rewards", "ExplainedVarianceAccumulator.update")
        states = state_mask != 0
        r = rewards.detach().to(torch.float64).unsqueeze(1).expand(batch, seq)
        r = torch.where(states, r, 0.0)
        e = torch.where(states, r - v, 0.0)
        moments = torch.stack(
            [states.sum().to(torch.float64), r.sum(), (r * r).sum(), e.sum(), (e * e).sum()]
        )
        self._moments = moments if self._moments is None else self._moments + moments.to(
            self._moments.device
        )

    def compute(self) -> float:
        """Return the explained variance (NaN when Var(R) = 0).

        Under torch.distributed every rank must call this (it all-reduces).
        """
        local = self._moments
        if local is None:
            local = torch.zeros(5, dtype=torch.float64, device=self._device)
        count, sum_r, sum_r2, sum_e, sum_e2 = all_reduce_sum(local).tolist()
        if count == 0:
            return math.nan
        var_r = sum_r2 / count - (sum_r / count) ** 2
        var_e = sum_e2 / count - (sum_e / count) ** 2
        if var_r <= 1e-12 * max(sum_r2 / count, 1e-300):
            return math.nan
        return 1.0 - var_e / var_r


def first_error_targets(rewards: torch.Tensor, first_error: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Per-state value targets from first-error labels (``value_target: first_error``).

    V_t is read after token t. A correct row's states regress to 1. An incorrect row whose
    first bug token is at position e (``data/diff.py``) regresses to 1 while the program is
    still a correct one's prefix (t < e) and to 0 from the bug on (t ≥ e), so the critic
    learns to drop at the bug, as a process reward model does; an incorrect row without a
    known bug (e = −1) regresses to its outcome 0 everywhere.

    Args:
        rewards: ``(B,)`` outcomes.
        first_error: ``(B,)`` long, −1 when unknown.
        seq_len: S.

    Returns:
        ``(B, S)`` float targets.
    """
    positions = torch.arange(seq_len, device=rewards.device).unsqueeze(0)  # (1, S)
    error = first_error.to(rewards.device).unsqueeze(1)  # (B, 1)
    before_bug = (error >= 0) & (positions < error)
    return torch.where(before_bug, torch.ones_like(positions, dtype=rewards.dtype),
                       rewards.float().unsqueeze(1).expand(-1, seq_len).to(rewards.dtype))
