"""Optimizer groups and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from weighted_mtp.training.schedule import (
    build_optimizer,
    build_scheduler,
    warmup_cosine_factor,
    warmup_steps_for,
)


def _lrs(total: int, warmup_ratio: float, lr: float = 1.0) -> list[float]:
    """The learning rate each of ``total`` updates uses."""
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model.named_parameters(), lr)
    scheduler = build_scheduler(optimizer, total, warmup_ratio)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_is_linear_then_cosine_decays_to_near_zero():
    lrs = _lrs(total=20, warmup_ratio=0.2)  # 4 warm-up steps
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    decay = lrs[4:]
    assert all(a > b for a, b in zip(decay, decay[1:])), "cosine part must strictly decrease"
    # half cosine over 16 steps: step s after warm-up has 0.5 (1 + cos(pi s / 16))
    assert decay == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 16)) for s in range(16)])
    assert 0 < lrs[-1] < 0.01


def test_no_warmup_starts_at_peak_and_single_step_stage_is_valid():
    assert _lrs(total=5, warmup_ratio=0.0)[0] == pytest.approx(1.0)
    assert _lrs(total=1, warmup_ratio=0.5) == pytest.approx([1.0])
    assert warmup_steps_for(1, 0.5) == 0  # never the whole stage


def test_min_ratio_floor():
    assert warmup_cosine_factor(100, 0, 100, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(0, 0, 100, min_ratio=0.1) == pytest.approx(1.0)


def test_weight_decay_only_on_matrices_and_frozen_parameters_skipped():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    optimizer = build_optimizer(model.named_parameters(), 1e-3, weight_decay=0.1)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert all(p.ndim == 1 for p in no_decay["params"]) and len(no_decay["params"]) == 4


def test_errors_say_what_is_wrong():
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        build_optimizer(frozen.named_parameters(), 1e-3)
    optimizer = build_optimizer(nn.Linear(2, 2).named_parameters(), 1e-3)
    with pytest.raises(ValueError, match="total_steps"):
        build_scheduler(optimizer, 0, 0.1)
    with pytest.raises(ValueError, match="warmup_ratio"):
        build_scheduler(optimizer, 10, 1.0)
