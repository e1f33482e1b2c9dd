"""compute_td_errors against the per-element definition and its edge cases."""

from __future__ import annotations

import pytest
import torch

from weighted_mtp.value_weighting import compute_td_errors
from weighted_mtp.value_weighting.reference import td_errors_loop


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_on_ragged_batches(make_ragged_batch, gamma, seed):
    batch = make_ragged_batch(8, 37, seed)
    args = (batch["values"], batch["rewards"], batch["mask"])
    kwargs = dict(gamma=gamma, initial_value=0.3, truncated=batch["truncated"])
    expected = td_errors_loop(*args, **kwargs)
    actual = compute_td_errors(*args, **kwargs)
    torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)
    assert not actual.isnan().any(), "NaN padding leaked into the TD errors"


def test_response_at_position_zero_uses_initial_value():
    values = torch.tensor([[0.7, 0.2, 0.4]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1]])
    delta = compute_td_errors(values, torch.tensor([1.0]), mask, initial_value=0.25)
    torch.testing.assert_close(delta, torch.tensor([[0.7 - 0.25, 0.2 - 0.7, 1.0 - 0.2]]).double())


def test_truncated_row_bootstraps_its_last_token():
    values = torch.tensor([[0.5, 0.4, 0.6, 0.9], [0.5, 0.4, 0.6, 0.9]], dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]])
    rewards = torch.tensor([1.0, 1.0], dtype=torch.float64)
    delta = compute_td_errors(
        values, rewards, mask, gamma=0.5, truncated=torch.tensor([False, True])
    )
    assert delta[0, 3].item() == pytest.approx(1.0 - 0.6)  # judged by R
    assert delta[1, 3].item() == pytest.approx(0.5 * 0.9 - 0.6)  # not terminal
    torch.testing.assert_close(delta[0, :3], delta[1, :3])


def test_rows_without_response_are_zero_and_one_token_rows_are_terminal():
    values = torch.tensor([[0.5, 0.4, 0.6], [0.5, 0.4, 0.6]], dtype=torch.float64)
    mask = torch.tensor([[0, 0, 0], [0, 1, 0]])
    delta = compute_td_errors(values, torch.tensor([1.0, 0.0]).double(), mask)
    torch.testing.assert_close(delta, torch.tensor([[0, 0, 0], [0, 0.0 - 0.5, 0]]).double())


def test_values_are_detached():
    values = torch.rand(2, 5, requires_grad=True)
    delta = compute_td_errors(values, torch.ones(2), torch.ones(2, 5))
    assert not delta.requires_grad


@pytest.mark.parametrize(
    ("values", "rewards", "mask", "match"),
    [
        (torch.rand(2, 5, 2), torch.ones(2), torch.ones(2, 5), "values"),
        (torch.rand(2, 5), torch.ones(3), torch.ones(2, 5), "rewards"),
        (torch.rand(2, 5), torch.ones(2), torch.ones(2, 4), "loss_mask"),
    ],
)
def test_bad_shapes_say_what_was_expected(values, rewards, mask, match):
    with pytest.raises(ValueError, match=match):
        compute_td_errors(values, rewards, mask)
