"""build_weights: whitening, clipping, fallbacks, normalisation and no gradient."""

from __future__ import annotations

import math

import pytest
import torch

from weighted_mtp.value_weighting import build_weights, compute_td_errors
from weighted_mtp.value_weighting.reference import build_weights_loop

CLIP = dict(min_weight=0.1, max_weight=5.0)


@pytest.mark.parametrize("normalize_mean", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop(make_ragged_batch, seed, normalize_mean):
    batch = make_ragged_batch(6, 31, seed)
    delta = compute_td_errors(batch["values"], batch["rewards"], batch["mask"])
    expected = build_weights_loop(delta, batch["mask"], 0.7, normalize_mean=normalize_mean, **CLIP)
    actual = build_weights(delta, batch["mask"], 0.7, normalize_mean=normalize_mean, **CLIP)
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


def test_no_gradient_reaches_the_values():
    values = torch.rand(3, 8, requires_grad=True)
    mask = torch.ones(3, 8)
    delta = compute_td_errors(values, torch.tensor([1.0, 0.0, 1.0]), mask)
    weights = build_weights(delta, mask, 0.9, **CLIP)
    assert not weights.requires_grad
    with pytest.raises(RuntimeError):
        torch.autograd.grad(weights.sum(), values)
    # Even an x that carries a graph is cut off.
    x = values * 2.0
    assert not build_weights(x, mask, 0.9, **CLIP).requires_grad


@pytest.mark.parametrize("n_valid", [0, 1])
def test_at_most_one_valid_token_gives_the_mask(n_valid):
    x = torch.tensor([[0.3, -2.0, 4.0]])
    mask = torch.tensor([[0.0, 0.0, 0.0]])
    mask[0, 1 : 1 + n_valid] = 1.0
    torch.testing.assert_close(build_weights(x, mask, 0.9, **CLIP), mask)
    # With supplied statistics the batch rule still applies.
    torch.testing.assert_close(build_weights(x, mask, 0.9, mean=0.0, std=1.0, **CLIP), mask)


def test_supplied_statistics_replace_batch_statistics():
    x = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    mask = torch.ones(1, 3)
    weights = build_weights(x, mask, beta=2.0, min_weight=0.0, max_weight=100.0, mean=1.0, std=0.5)
    expected = [math.exp((v - 1.0) / (0.5 + 1e-8) / 2.0) for v in (0.0, 1.0, 2.0)]
    torch.testing.assert_close(weights, torch.tensor([expected], dtype=torch.float64))


def test_normalize_mean_gives_mean_one_over_the_mask():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, generator=gen)
    mask = (torch.rand(4, 16, generator=gen) < 0.6).float()
    weights = build_weights(x, mask, 0.5, normalize_mean=True, **CLIP)
    assert weights[mask == 1].mean().item() == pytest.approx(1.0, abs=1e-6)
    assert (weights[mask == 0] == 0).all()


def test_clipping_bounds_hold():
    x = torch.linspace(-10, 10, 50).unsqueeze(0)
    weights = build_weights(x, torch.ones(1, 50), 0.1, **CLIP)
    assert weights.min().item() == pytest.approx(0.1)
    assert weights.max().item() == pytest.approx(5.0)


def test_padding_nans_do_not_leak():
    x = torch.tensor([[0.1, 0.5, float("nan")]])
    weights = build_weights(x, torch.tensor([[1.0, 1.0, 0.0]]), 0.9, **CLIP)
    assert torch.isfinite(weights).all() and weights[0, 2] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(beta=0.0, min_weight=0.1, max_weight=5.0), "beta"),
        (dict(beta=1.0, min_weight=6.0, max_weight=5.0), "min_weight"),
        (dict(beta=1.0, min_weight=0.1, max_weight=5.0, mean=0.0, std=-1.0), "std"),
    ],
)
def test_invalid_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_weights(torch.zeros(1, 3), torch.ones(1, 3), **kwargs)


def test_mismatched_mask_raises():
    with pytest.raises(ValueError, match=r"loss_mask of shape \(1, 3\)"):
        build_weights(torch.zeros(1, 3), torch.ones(1, 4), 0.9, **CLIP)
