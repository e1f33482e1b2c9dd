"""The weights stage 2 would give every response token of one batch, for inspection.

Training whitens over each step's ``train_on`` rows; the token-weight report and the
critic metrics instead want to see correct and incorrect rows side by side, so here the
whitening covers every response token of the given batch, on this rank alone. The same
functions as training (TD errors → optional GAE → exp(z/β) → clip) produce the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .gae import compute_gae_advantages
from .td import compute_td_errors
from .weights import build_weights


def td_advantages(values: torch.Tensor, batch: Mapping[str, Any], td: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(δ, A), each ``(B, S)``: TD errors, and GAE advantages when ``td_lambda`` > 0 (else δ)."""
    mask = batch["loss_mask"]
    deltas = compute_td_errors(values, batch["rewards"], mask, gamma=td.gamma,
                               initial_value=td.initial_value, truncated=batch["truncated"])
    if td.td_lambda > 0:
        return deltas, compute_gae_advantages(deltas, mask, gamma=td.gamma, lam=td.td_lambda)
    return deltas, deltas


def weigh(
    values: torch.Tensor, batch: Mapping[str, Any], td: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(δ, A, w), each ``(B, S)``: TD errors → optional GAE → whitened, clipped weights.

    Args:
        values: ``(B, S)`` value-head outputs.
        batch: A collated batch (``loss_mask``, ``rewards``, ``truncated``).
        td: Stage-2 weighting options (``beta``, ``gamma``, ``td_lambda``,
            ``initial_value``, ``weight_clip_min``, ``weight_clip_max``, ``normalize_mean``).
    """
    deltas, advantages = td_advantages(values, batch, td)
    weights = build_weights(advantages, batch["loss_mask"], td.beta, td.weight_clip_min, td.weight_clip_max,  # this batch's own statistics
                            normalize_mean=td.normalize_mean)
    return deltas, advantages, weights
