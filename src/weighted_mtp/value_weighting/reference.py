"""Direct per-element transcriptions of docs/METHOD.md, used as the specification.

These loops read exactly like the definitions, one token at a time, and are what the tests
compare the vectorised functions against and what ``benchmarks/bench_weighting.py`` times as
the baseline. They are far too slow for training: do not call them there.
"""

from __future__ import annotations

import math

import torch


def td_errors_loop(
    values: torch.Tensor,
    rewards: torch.Tensor,
    loss_mask: torch.Tensor,
    gamma: float = 1.0,
    initial_value: float = 0.5,
    truncated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference for :func:`compute_td_errors` (values ``(B, S)``)."""
    batch, seq = loss_mask.shape
    out = torch.zeros(batch, seq, dtype=torch.float64)
    for b in range(batch):
        positions = [t for t in range(seq) if loss_mask[b, t] != 0]
        if not positions:
            continue
        last = positions[-1]
        is_truncated = truncated is not None and bool(truncated[b])
        for t in positions:
            previous = values[b, t - 1] if t > 0 else initial_value
            if t == last and not is_truncated:
                out[b, t] = rewards[b] - previous
            else:
                out[b, t] = gamma * values[b, t] - previous
    return out


def gae_advantages_loop(
    td_errors: torch.Tensor, loss_mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> torch.Tensor:
    """Reference for :func:`compute_gae_advantages`: A_t = δ_t + γλ·A_{t+1} inside the mask."""
    batch, seq = loss_mask.shape
    out = torch.zeros(batch, seq, dtype=torch.float64)
    for b in range(batch):
        running = 0.0
        for t in reversed(range(seq)):
            if loss_mask[b, t] == 0:
                running = 0.0
                continue
            running = td_errors[b, t] + gamma * lam * running
            out[b, t] = running
    return out


def build_weights_loop(
    x: torch.Tensor,
    loss_mask: torch.Tensor,
    beta: float,
    min_weight: float,
    max_weight: float,
    normalize_mean: bool = False,
) -> torch.Tensor:
    """Reference for :func:`build_weights` with batch statistics (single process)."""
    batch, seq = loss_mask.shape
    cells = [(b, t) for b in range(batch) for t in range(seq) if loss_mask[b, t] != 0]
    out = torch.zeros(batch, seq, dtype=torch.float64)
    if len(cells) <= 1:
        for b, t in cells:
            out[b, t] = 1.0
        return out
    mean = sum(float(x[b, t]) for b, t in cells) / len(cells)
    var = sum((float(x[b, t]) - mean) ** 2 for b, t in cells) / (len(cells) - 1)
    std = math.sqrt(var)
    for b, t in cells:
        z = (x[b, t] - mean) / (std + 1e-8)
        out[b, t] = min(max(math.exp(float(z) / beta), min_weight), max_weight)
    if normalize_mean:
        out = out * (len(cells) / float(out.sum()))
    return out
