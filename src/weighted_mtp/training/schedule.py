"""Optimizer and learning-rate schedule shared by every training stage.

AdamW with two parameter groups (weight decay only on matrices, never on norms or biases,
as in nanoGPT) and a linear warm-up followed by a cosine decay, stepped once per
optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    learning_rate: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.AdamW:
    """Build AdamW over the trainable parameters.

    Matrices (``ndim >= 2``) decay; vectors (RMSNorm weights, biases) do not, because
    shrinking a norm's gain towards zero changes the function instead of regularising it.

    Args:
        named_parameters: ``(name, parameter)`` pairs; frozen ones (``requires_grad`` False)
            are skipped so the optimizer state holds only what trains.
        learning_rate: Peak learning rate (the schedule multiplies it).
        weight_decay: Decoupled weight decay of the matrix group.
        betas: Adam betas.

    Returns:
        The optimizer.

    Raises:
        ValueError: When no parameter is trainable.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("build_optimizer: no trainable parameter (all have requires_grad=False).")
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier for the update that follows ``step`` earlier updates.

    Linear warm-up reaches 1.0 on the last warm-up step (``(step + 1) / warmup_steps``), so
    the very first update is already non-zero; then a half cosine decays from 1.0 towards
    ``min_ratio``, staying above it on the last step so no update is wasted at lr 0.

    Args:
        step: Number of optimizer steps already taken (0 for the first update).
        warmup_steps: Length of the linear warm-up (0 disables it).
        total_steps: Total optimizer steps of the stage.
        min_ratio: Floor of the cosine, as a fraction of the peak learning rate.

    Returns:
        The multiplier in ``(0, 1]``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length for a stage: ``int(warmup_ratio * total_steps)``, never all of it."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1); got {warmup_ratio}.")
    return min(int(warmup_ratio * total_steps), max(0, total_steps - 1))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_ratio: float,
    min_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warm-up then cosine decay, as a ``LambdaLR`` stepped once per optimizer step.

    Args:
        optimizer: The optimizer whose groups' learning rates are scheduled.
        total_steps: Optimizer steps of the stage (≥ 1).
        warmup_ratio: Fraction of ``total_steps`` spent warming up.
        min_ratio: Floor of the cosine as a fraction of the peak learning rate.

    Returns:
        The scheduler; its state dict goes into every checkpoint.

    Raises:
        ValueError: When ``total_steps`` < 1 or ``warmup_ratio`` is outside [0, 1).
    """
    if total_steps < 1:
        raise ValueError(f"build_scheduler: total_steps must be >= 1; got {total_steps}.")
    warmup = warmup_steps_for(total_steps, warmup_ratio)

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup, total_steps, min_ratio)

    return LambdaLR(optimizer, factor)
