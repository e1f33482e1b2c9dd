"""The worked example of docs/METHOD.md §4, end to end, to 1e-5."""

from __future__ import annotations

import torch

from weighted_mtp.value_weighting import (
    build_weights,
    compute_gae_advantages,
    compute_td_errors,
)
from weighted_mtp.value_weighting.moments import masked_moments, mean_std_from_moments

ATOL = 1e-5


def test_td_errors_match_worked_example(worked_example):
    delta = compute_td_errors(
        worked_example["values"], worked_example["rewards"], worked_example["mask"]
    )
    torch.testing.assert_close(delta, worked_example["delta"], atol=ATOL, rtol=0)


def test_whitening_statistics_match_worked_example(worked_example):
    moments = masked_moments(worked_example["delta"], worked_example["mask"])  # what build_weights whitens with
    mean, std = mean_std_from_moments(moments)
    assert abs(float(mean) - worked_example["mean"]) < ATOL
    assert abs(float(std) - worked_example["std"]) < ATOL
    assert float(moments[0]) == 8


def test_weights_match_worked_example(worked_example):
    weights = build_weights(
        worked_example["delta"], worked_example["mask"], beta=0.9, min_weight=0.1, max_weight=5.0
    )
    torch.testing.assert_close(weights, worked_example["weights"], atol=ATOL, rtol=0)


def test_gae_matches_worked_example(worked_example):
    advantages = compute_gae_advantages(
        worked_example["delta"], worked_example["mask"], gamma=1.0, lam=0.95
    )
    torch.testing.assert_close(advantages, worked_example["gae"], atol=ATOL, rtol=0)


def test_fp32_inputs_give_the_same_numbers(worked_example):
    values = worked_example["values"].float()
    mask = worked_example["mask"].bool()
    delta = compute_td_errors(values.unsqueeze(-1), worked_example["rewards"].float(), mask)
    assert delta.dtype == torch.float32
    weights = build_weights(delta, mask, beta=0.9, min_weight=0.1, max_weight=5.0)
    advantages = compute_gae_advantages(delta, mask, lam=0.95)
    torch.testing.assert_close(weights.double(), worked_example["weights"], atol=ATOL, rtol=0)
    torch.testing.assert_close(advantages.double(), worked_example["gae"], atol=ATOL, rtol=0)
