"""Generalised advantage estimation over each row's response, without a Python loop.

A_t = Σ_{l≥0} (γλ)^l δ_{t+l} is a linear recurrence A_t = δ_t + c·A_{t+1} (c = γλ). Rather
than scanning t one step at a time (S kernel launches), the row is cut into blocks of L
positions and the recurrence is solved with two small triangular matrix products:

1. inside every block at once: local = δ_block @ U with U[j, t] = c^(j−t) for j ≥ t;
2. across blocks: the value at each block start, h_i = Σ_{k≥i} (c^L)^(k−i) local_k[0],
   is the same recurrence on n = S/L block heads, solved with an (n × n) matrix W;
3. A_t = local_t + c^(L−t)·h_{i+1}.

Every power has a non-negative exponent, so long sequences underflow harmlessly to zero
instead of overflowing as the (γλ)^(−t) cumulative-sum trick does. With L ≈ √S the work is
O(B·S^1.5) in two matmuls, with no host sync.
"""

from __future__ import annotations

import functools
import math

import torch

from .validation import float_dtype, require_shape


def compute_gae_advantages(
    td_errors: torch.Tensor,
    loss_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> torch.Tensor:
    """GAE advantages A_t = Σ_{l≥0} (γλ)^l δ_{t+l} within each row's response.

    The sum stops at the end of the response: it runs over each contiguous run of
    ``loss_mask`` (the response p..T in the data this project produces), so it never
    reaches into padding or into another run. ``lam=0`` returns the masked TD errors.

    Args:
        td_errors: TD errors δ, ``(B, S)`` (see :func:`compute_td_errors`).
        loss_mask: ``(B, S)``, non-zero on response tokens.
        gamma: Discount factor γ in [0, 1].
        lam: GAE λ in [0, 1].

    Returns:
        Advantages of shape ``(B, S)``, zero outside the mask, in fp32 (fp64 if
        ``td_errors`` is fp64). Differentiable in ``td_errors`` (it is linear).

    Raises:
        ValueError: If shapes differ or ``gamma``/``lam`` lie outside [0, 1].
    """
    if td_errors.dim() != 2:
        raise ValueError(
            f"compute_gae_advantages: expected td_errors of shape (B, S), "
            f"got {tuple(td_errors.shape)}"
        )
    require_shape(loss_mask, td_errors.shape, "loss_mask", "compute_gae_advantages")
    for name, value in (("gamma", gamma), ("lam", lam)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"compute_gae_advantages: {name} must be in [0, 1], got {value}")
    valid = loss_mask != 0
    delta = torch.where(valid, td_errors.to(float_dtype(td_errors)), 0.0)
    decay = gamma * lam
    if decay == 0.0 or delta.shape[1] == 0:
        return delta
    advantages = discounted_suffix_sum(delta, decay)
    return _stop_at_run_ends(advantages, valid, decay)


def discounted_suffix_sum(x: torch.Tensor, decay: float, block: int | None = None) -> torch.Tensor:
    """Return y_t = Σ_{j≥t} decay^(j−t) x_j along the last dimension of a ``(B, S)`` tensor.

    Args:
        x: ``(B, S)`` floating tensor.
        decay: Factor in [0, 1].
        block: Block length L; defaults to ⌈√S⌉ (balances the two matmuls).

    Returns:
        ``(B, S)`` tensor of discounted suffix sums.
    """
    batch, seq = x.shape
    length = block or max(1, math.isqrt(seq - 1) + 1)
    n_blocks = -(-seq // length)
    padded = torch.nn.functional.pad(x, (0, n_blocks * length - seq))
    blocks = padded.view(batch, n_blocks, length)  # (B, n, L)

    # Step 1: suffix sums inside every block, local[b, i, t] = Σ_{j≥t} c^(j−t) x[b, i, j].
    local = blocks @ _upper_powers(decay, 1, length, x.dtype, x.device)  # (B, n, L)
    # Step 2: the block-start values h_i from the block heads, with factor c^L.
    heads = local[:, :, 0]  # (B, n)
    starts = heads @ _upper_powers(decay, length, n_blocks, x.dtype, x.device)  # (B, n)
    # Step 3: every position adds the discounted start value of the next block.
    next_start = torch.nn.functional.pad(starts[:, 1:], (0, 1))  # (B, n)
    carry = _power_table(decay, length + 1, x.dtype, x.device)[1:].flip(0)  # (L,): c^(L−t)
    out = local + next_start.unsqueeze(-1) * carry  # (B, n, L)
    return out.reshape(batch, n_blocks * length)[:, :seq]


def _power_table(decay: float, size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """decay^k for k = 0..size−1 in ``dtype``.

    Sizes are rounded up to a power of two before the cached computation, so batches padded
    to different lengths share a few cached tables.
    """
    return _cached_power_table(decay, 1 << max(size - 1, 0).bit_length(), dtype, device)[:size]


@functools.lru_cache(maxsize=64)
def _cached_power_table(
    decay: float, size: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """decay^k for k = 0..size−1 in ``dtype`` (cached: the same few shapes recur every step).

    Computed in float64 from non-negative exponents, so it cannot overflow. Powers below the
    smallest normal number are set to 0: they cannot change a sum at this precision, and
    subnormal arithmetic is very slow on many CPUs.
    """
    with torch.inference_mode(False):  # a cached inference tensor could not enter autograd
        exponents = torch.arange(size, device=device, dtype=torch.float64)
        powers = torch.pow(decay, exponents).to(dtype)
        return torch.where(powers < torch.finfo(dtype).tiny, 0.0, powers)


@functools.lru_cache(maxsize=64)
def _upper_powers(
    decay: float, step: int, size: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(size × size) matrix M[j, t] = decay^(step·(j − t)) for j ≥ t, else 0 (cached)."""
    with torch.inference_mode(False):
        idx = torch.arange(size, device=device)
        gap = idx.unsqueeze(1) - idx.unsqueeze(0)  # (size, size): j − t
        table = _power_table(decay, step * (size - 1) + 1, dtype, device)
        return torch.where(gap >= 0, table[(step * gap).clamp(min=0)], 0.0)


def _stop_at_run_ends(
    advantages: torch.Tensor, valid: torch.Tensor, decay: float
) -> torch.Tensor:
    """Remove what the whole-row suffix sum picked up beyond the end of each run.

    The whole-row sum at t equals the sum over t's run plus c^(E+1−t)·A_{E+1}, E being the
    run's last position. For a single contiguous response A_{T+1} = 0 exactly, so this
    changes nothing there; it only matters for rows with several runs of the mask.
    """
    batch, seq = valid.shape
    positions = torch.arange(seq, device=valid.device)
    valid_next = torch.nn.functional.pad(valid[:, 1:], (0, 1))  # pad with False
    run_end = torch.where(valid & ~valid_next, positions, seq)  # (B, S), sentinel S
    # The first run end at or after t: a reverse cumulative minimum.
    end = run_end.flip(1).cummin(1).values.flip(1)
    after = (end + 1).clamp(max=seq)  # (B, S), S means "past the row"
    padded = torch.nn.functional.pad(advantages, (0, 1))  # A_S = 0
    beyond = padded.gather(1, after)
    # c^k for k = 0..S from a table: one pow per position of a row rather than per element.
    table = _power_table(decay, seq + 1, advantages.dtype, advantages.device)
    factor = table.expand(batch, seq + 1).gather(1, after - positions)  # (B, S)
    return torch.where(valid, advantages - factor * beyond, 0.0)
