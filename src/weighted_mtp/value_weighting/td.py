"""Temporal-difference errors of the value head (docs/METHOD.md).

V_t estimates the probability that the program is correct given tokens 0..t, so the TD error
δ_t = γ·V_t − V_{t−1} is how much token t moved that estimate: its marginal value. The last
response token is judged by the real outcome R instead of a bootstrap.
"""

from __future__ import annotations

import torch

from .validation import float_dtype, require_shape, values_2d


def compute_td_errors(
    values: torch.Tensor,
    rewards: torch.Tensor,
    loss_mask: torch.Tensor,
    gamma: float = 1.0,
    initial_value: float = 0.5,
    truncated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token TD errors over each row's response, zero elsewhere.

    Row b's response occupies the contiguous positions p..T where ``loss_mask`` is non-zero
    (padding is on the right). Then

    - δ_t = γ·V_t − V_{t−1} for p ≤ t < T, where V_{p−1} is the value at the last prompt
      position, or ``initial_value`` when the response starts at position 0;
    - δ_T = R − V_{T−1}: the last token is judged by the real outcome;
    - for a ``truncated`` row the last visible token is not terminal (the program was cut
      off, its outcome is not this token's doing): δ_T = γ·V_T − V_{T−1};
    - δ = 0 outside the mask, and a row without response tokens is all zeros.

    The values are detached: TD errors feed token weights, and the policy loss must not
    push gradients into the critic through them.

    Args:
        values: Value-head outputs, ``(B, S)`` or ``(B, S, 1)``.
        rewards: Outcome per row, ``(B,)`` (1.0 correct, 0.0 incorrect).
        loss_mask: ``(B, S)``, non-zero on response tokens.
        gamma: Discount factor γ.
        initial_value: V_{−1}, used when a response starts at position 0.
        truncated: Optional ``(B,)`` bool; True marks a row cut at ``max_length``.

    Returns:
        TD errors of shape ``(B, S)`` in fp32 (fp64 if ``values`` is fp64).

    Raises:
        ValueError: If the shapes do not match.
    """
    v = values_2d(values).detach()
    batch, seq = v.shape
    require_shape(loss_mask, (batch, seq), "loss_mask", "compute_td_errors")
    require_shape(rewards, (batch,), "rewards", "compute_td_errors")
    if truncated is not None:
        require_shape(truncated, (batch,), "truncated", "compute_td_errors")
    dtype = float_dtype(v)
    v = v.to(dtype)
    valid = loss_mask != 0

    # V_{t-1}: shift right by one; V_{-1} is the initial value.
    first = torch.full((batch, 1), initial_value, dtype=dtype, device=v.device)
    previous = torch.cat([first, v[:, :-1]], dim=1)  # (B, S)

    # The terminal token is the last valid position of the row: the only valid position
    # with exactly one valid position at or after it (a reverse cumulative count).
    valid_from_here = valid.flip(1).cumsum(1).flip(1)  # (B, S)
    terminal = valid & (valid_from_here == 1)
    if truncated is not None:
        terminal = terminal & ~truncated.to(torch.bool, copy=False).unsqueeze(1)

    target = torch.where(terminal, rewards.detach().to(dtype).unsqueeze(1), gamma * v)
    # torch.where (not multiplication) so NaN/garbage values in padding cannot leak.
    return torch.where(valid, target - previous, 0.0)
