"""compute_td_stats / compute_weight_stats: logging summaries as Python floats."""

from __future__ import annotations

import math

import pytest
import torch

from weighted_mtp.value_weighting import compute_td_stats, compute_weight_stats


def test_uniform_weights_have_ess_equal_to_the_token_count():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    stats = compute_weight_stats(torch.ones(2, 4) * mask, mask, 0.1, 5.0)
    assert stats["ess"] == pytest.approx(5.0)
    assert stats["ess_frac"] == pytest.approx(1.0)
    assert stats["clipped_low_frac"] == 0.0 and stats["clipped_high_frac"] == 0.0


def test_clipping_fractions_and_ess_of_skewed_weights():
    w = torch.tensor([[0.1, 0.1, 5.0, 1.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    stats = compute_weight_stats(w, mask, 0.1, 5.0)
    assert stats["clipped_low_frac"] == pytest.approx(0.5)
    assert stats["clipped_high_frac"] == pytest.approx(0.25)
    assert stats["ess"] == pytest.approx(6.2**2 / (0.01 + 0.01 + 25.0 + 1.0))
    assert stats["max"] == pytest.approx(5.0)  # the masked 99 is ignored


def test_td_stats_values_and_types():
    x = torch.arange(11, dtype=torch.float32).unsqueeze(0)
    stats = compute_td_stats(x, torch.ones(1, 11))
    assert all(isinstance(v, float) for v in stats.values())
    assert stats["p10"] == pytest.approx(1.0)
    assert stats["p50"] == pytest.approx(5.0)
    assert stats["p90"] == pytest.approx(9.0)
    assert (stats["min"], stats["max"], stats["mean"]) == (0.0, 10.0, 5.0)


def test_empty_mask_gives_nan_and_zero_counts():
    stats = compute_weight_stats(torch.ones(2, 3), torch.zeros(2, 3), 0.1, 5.0)
    assert stats["n_tokens"] == 0.0 and stats["ess"] == 0.0
    assert math.isnan(stats["mean"]) and math.isnan(stats["p50"])


def test_mismatched_mask_raises():
    with pytest.raises(ValueError, match="mask of shape"):
        compute_td_stats(torch.zeros(2, 3), torch.zeros(3, 2))
