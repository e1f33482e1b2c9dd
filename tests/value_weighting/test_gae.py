"""compute_gae_advantages: equal to the reverse loop, stable on long sequences."""

from __future__ import annotations

import pytest
import torch

from weighted_mtp.value_weighting import compute_gae_advantages, compute_td_errors
from weighted_mtp.value_weighting.gae import discounted_suffix_sum
from weighted_mtp.value_weighting.reference import gae_advantages_loop


def _ragged_td(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return compute_td_errors(
        batch["values"], batch["rewards"], batch["mask"], truncated=batch["truncated"]
    )


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.97)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_on_ragged_batches(make_ragged_batch, gamma, lam, seed):
    batch = make_ragged_batch(8, 53, seed)
    delta = _ragged_td(batch)
    expected = gae_advantages_loop(delta, batch["mask"], gamma, lam)
    actual = compute_gae_advantages(delta, batch["mask"], gamma, lam)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_long_sequences_with_lambda_close_to_one(make_ragged_batch):
    batch = make_ragged_batch(4, 1000, seed=3)
    delta = _ragged_td(batch)
    expected = gae_advantages_loop(delta, batch["mask"], 1.0, 0.999)
    actual = compute_gae_advantages(delta, batch["mask"], 1.0, 0.999)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
    assert torch.isfinite(actual).all()


def test_fp32_long_sequence_stays_finite_and_close():
    # (γλ)^(−t) tricks overflow fp32 here (0.9^-5000 = 1e228); the blocked scan must not.
    delta = torch.randn(2, 5000, dtype=torch.float64) * 0.1
    mask = torch.ones(2, 5000)
    expected = gae_advantages_loop(delta, mask, 0.9, 1.0)
    actual = compute_gae_advantages(delta.float(), mask, 0.9, 1.0)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual.double(), expected, atol=1e-5, rtol=0)


def test_lambda_zero_returns_masked_td_errors(make_ragged_batch):
    batch = make_ragged_batch(6, 20, seed=4)
    delta = torch.randn(6, 20, dtype=torch.float64)
    actual = compute_gae_advantages(delta, batch["mask"], 1.0, 0.0)
    torch.testing.assert_close(actual, delta * batch["mask"])


def test_sum_stops_at_the_end_of_each_run_of_the_mask():
    delta = torch.arange(1.0, 9.0, dtype=torch.float64).unsqueeze(0)
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 0]])
    expected = gae_advantages_loop(delta, mask, 1.0, 0.5)
    actual = compute_gae_advantages(delta, mask, 1.0, 0.5)
    torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)
    assert actual[0, 2].item() == 3.0  # not 3 + 0.5**3 · 6 from the next run


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_suffix_sum_is_independent_of_the_block_size(block):
    x = torch.randn(3, 29, dtype=torch.float64)
    mask = torch.ones(3, 29)
    expected = gae_advantages_loop(x, mask, 1.0, 0.8)
    torch.testing.assert_close(discounted_suffix_sum(x, 0.8, block), expected, atol=1e-12, rtol=0)


def test_single_position_rows():
    delta = torch.tensor([[0.3], [0.2]], dtype=torch.float64)
    mask = torch.tensor([[1], [0]])
    torch.testing.assert_close(
        compute_gae_advantages(delta, mask, 1.0, 0.95), torch.tensor([[0.3], [0.0]]).double()
    )


@pytest.mark.parametrize(("gamma", "lam"), [(1.1, 0.9), (1.0, -0.1)])
def test_rejects_factors_outside_unit_interval(gamma, lam):
    with pytest.raises(ValueError, match="must be in"):
        compute_gae_advantages(torch.zeros(1, 3), torch.ones(1, 3), gamma, lam)


def test_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="loss_mask"):
        compute_gae_advantages(torch.zeros(2, 3), torch.ones(2, 4))


def test_cached_tables_from_inference_mode_still_work_with_autograd():
    delta = torch.randn(2, 11)
    mask = torch.ones(2, 11)
    with torch.inference_mode():
        compute_gae_advantages(delta, mask, 1.0, 0.123)  # fills the caches for this decay
    leaf = delta.clone().requires_grad_()
    compute_gae_advantages(leaf, mask, 1.0, 0.123).sum().backward()
    # ∂(Σ_t A_t)/∂δ_j = Σ_{t≤j} c^(j−t): 1 for the first position.
    assert leaf.grad[0, 0].item() == pytest.approx(1.0)
