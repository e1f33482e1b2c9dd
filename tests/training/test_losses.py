"""MTP, value and Rho-1 losses (weighted_mtp.training.losses).

Self-contained (no conftest): tests/training is shared with the training-loop tests.
"""

from __future__ import annotations

import math

import pytest
import torch

from full_logits_oracle import mtp_loss

from weighted_mtp.training.losses import (
    ExplainedVarianceAccumulator,
    mtp_head_loss,
    per_token_ce,
    rho1_excess,
    rho1_select,
    value_loss,
    value_state_mask,
)


def _ce(logits: list[float], target: int) -> float:
    """Cross-entropy by hand: log Σ exp(logit) − logit[target]."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def _random_batch(seed: int, batch=2, seq=7, heads=3, vocab=5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, heads, vocab, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, vocab, (batch, seq), generator=gen)
    labels[:, :2] = -100  # prompt
    labels[1, -1] = -100  # padding
    return logits.requires_grad_(), labels


# --- MTP loss ---------------------------------------------------------------------------


def test_two_head_example_computed_by_hand():
    # B=1, S=3, n=2, V=2. Head 1 at t predicts labels[t+1], head 2 labels[t+2].
    logits = torch.tensor(
        [[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 2.0], [3.0, 3.0]], [[5.0, 5.0], [4.0, 0.0]]]],
        requires_grad=True,
    )  # (1, 3, 2, 2)
    labels = torch.tensor([[-100, 0, 1]])
    weights = torch.tensor([[7.0, 2.0, 0.5]])  # target-indexed; position 0 is no target
    head1 = [_ce([1.0, 0.0], 0), _ce([0.0, 2.0], 1)]  # targets at positions 1 and 2
    head2 = [_ce([0.0, 1.0], 1)]  # t=0 predicts position 2

    out = mtp_loss(logits, labels, weights)

    expected_weighted = [(2.0 * head1[0] + 0.5 * head1[1]) / 2, 0.5 * head2[0] / 1]
    expected_unweighted = [sum(head1) / 2, head2[0]]
    assert [h.item() for h in out.head_weighted] == pytest.approx(expected_weighted)
    assert [h.item() for h in out.head_unweighted] == pytest.approx(expected_unweighted)
    assert [int(n) for n in out.head_tokens] == [2, 1]
    assert out.weighted.item() == pytest.approx(sum(expected_weighted) / 2)
    assert out.unweighted.item() == pytest.approx(sum(expected_unweighted) / 2)
    assert out.head_weighted_sum[0].item() == pytest.approx(2.0 * head1[0] + 0.5 * head1[1])
    assert out.weighted.requires_grad and all(h.requires_grad for h in out.head_weighted)


def test_per_token_ce_is_target_indexed():
    logits, labels = _random_batch(0)
    ce, valid = per_token_ce(logits[:, :, 1], labels, offset=2)
    assert not valid[:, :2].any()
    assert (valid[:, 2:] == (labels[:, 2:] != -100)).all()
    expected = _ce(logits[0, 3, 1].tolist(), int(labels[0, 5]))  # position 3 predicts 5
    assert ce[0, 5].item() == pytest.approx(expected)
    assert (ce[~valid] == 0).all()


def test_weighting_a_target_changes_every_head_that_predicts_it_and_nothing_else():
    logits, labels = _random_batch(1)
    labels[:] = torch.randint(0, 5, labels.shape)  # all targets valid
    target = 4

    def grads(weights):
        (grad,) = torch.autograd.grad(mtp_loss(logits, labels, weights).weighted, logits)
        return grad

    ones = torch.ones(labels.shape, dtype=torch.float64)
    heavier = ones.clone()
    heavier[0, target] = 3.0
    changed = (grads(ones) != grads(heavier)).any(dim=-1)  # (B, S, n)
    expected = torch.zeros_like(changed)
    for k in (1, 2, 3):  # head k predicts `target` from position target − k
        expected[0, target - k, k - 1] = True
    assert torch.equal(changed, expected)


def test_per_head_path_equals_full_logits_path():
    logits, labels = _random_batch(2)
    weights = torch.rand(labels.shape, dtype=torch.float64)
    full = mtp_loss(logits, labels, weights)
    for h in range(logits.shape[2]):
        head = mtp_head_loss(logits[:, :, h].contiguous(), labels, h + 1, weights)
        assert torch.equal(head.weighted, full.head_weighted[h])
        assert torch.equal(head.unweighted, full.head_unweighted[h])
        assert torch.equal(head.n_tokens, full.head_tokens[h])


def test_no_weights_means_weighted_equals_unweighted():
    logits, labels = _random_batch(3)
    out = mtp_loss(logits, labels)
    assert torch.equal(out.weighted, out.unweighted)


def test_per_head_weights_select_a_column_per_head():
    logits, labels = _random_batch(4)
    weights = torch.rand(*labels.shape, 3, dtype=torch.float64)
    out = mtp_loss(logits, labels, weights)
    second = mtp_head_loss(logits[:, :, 1], labels, 2, weights[:, :, 1])
    assert torch.equal(out.head_weighted[1], second.weighted)


def test_heads_without_targets_are_left_out_of_the_mean():
    logits = torch.randn(1, 3, 4, 6, requires_grad=True)
    labels = torch.tensor([[-100, 2, 3]])  # heads 3 and 4 have no valid target
    out = mtp_loss(logits, labels)
    assert [int(n) for n in out.head_tokens] == [2, 1, 0, 0]
    assert out.head_weighted[3].item() == 0.0
    expected = (out.head_weighted[0] + out.head_weighted[1]) / 2
    torch.testing.assert_close(out.weighted, expected)
    out.weighted.backward()  # the graph is intact


def test_bf16_logits_give_fp32_losses():
    logits, labels = _random_batch(5)
    out = mtp_loss(logits.detach().bfloat16().requires_grad_(), labels)
    assert out.weighted.dtype == torch.float32
    reference = mtp_loss(logits.detach().bfloat16().double(), labels)
    assert out.weighted.item() == pytest.approx(reference.weighted.item(), rel=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(B, S, n, V\)"):
        mtp_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="weights"):
        labels = torch.zeros(2, 3, dtype=torch.long)
        mtp_head_loss(torch.zeros(2, 3, 4), labels, 1, torch.ones(2, 4))
    with pytest.raises(ValueError, match="offset"):
        per_token_ce(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), 0)


# --- value loss -------------------------------------------------------------------------


def test_value_state_mask_is_the_states_that_emit_response_tokens():
    loss_mask = torch.tensor([[0, 0, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
    expected = torch.tensor([[0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
    assert torch.equal(value_state_mask(loss_mask), expected)


def test_value_loss_mse_and_huber_over_the_states():
    values = torch.tensor([[0.2, 0.4, 0.9, 0.1]], requires_grad=True)
    loss_mask = torch.tensor([[0, 1, 1, 0]])  # states 0 and 1
    mse = value_loss(values.unsqueeze(-1), torch.tensor([1.0]), loss_mask)
    assert mse.loss.item() == pytest.approx((0.8**2 + 0.6**2) / 2)
    assert int(mse.count) == 2
    huber = value_loss(values, torch.tensor([1.0]), loss_mask, kind="huber", huber_delta=0.7)
    assert huber.loss.item() == pytest.approx((0.7 * (0.8 - 0.35) + 0.5 * 0.6**2) / 2)
    (grad,) = torch.autograd.grad(mse.loss, values)
    assert (grad[0, 2:] == 0).all() and (grad[0, :2] != 0).all()


def test_value_loss_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        value_loss(torch.zeros(1, 3), torch.zeros(1), torch.ones(1, 3), kind="l1")


def _ev(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor) -> float:
    accumulator = ExplainedVarianceAccumulator()
    for rows in (slice(0, 1), slice(1, None)):  # two batches, summed
        accumulator.update(values[rows], rewards[rows], mask[rows])
    return accumulator.compute()


def test_explained_variance_of_perfect_and_mean_predictors():
    rewards = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    perfect = rewards.unsqueeze(1).expand(3, 3).clone()
    assert _ev(perfect, rewards, mask) == pytest.approx(1.0)
    mean = (rewards.unsqueeze(1) * mask).sum() / mask.sum()  # mean of R over the states
    assert _ev(torch.full((3, 3), mean.item()), rewards, mask) == pytest.approx(0.0, abs=1e-6)


def test_explained_variance_is_nan_when_rewards_do_not_vary():
    assert math.isnan(_ev(torch.rand(2, 3), torch.ones(2), torch.ones(2, 3)))
    assert math.isnan(ExplainedVarianceAccumulator().compute())


# --- Rho-1 ------------------------------------------------------------------------------


def test_rho1_selects_the_top_fraction_of_valid_tokens():
    excess = torch.tensor([[0.1, 0.9, 0.5, 5.0], [0.3, 0.8, 0.2, 0.7]])
    valid = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # 7 valid; 5.0 is not a target
    selected = rho1_select(excess, valid, 0.4)  # ceil(2.8) = 3
    expected = torch.tensor([[0, 1, 0, 0], [0, 1, 0, 1]], dtype=torch.float32)
    assert torch.equal(selected, expected)


@pytest.mark.parametrize(("k_percent", "count"), [(0.6, 6), (0.3, 3), (0.01, 1), (1.0, 10)])
def test_rho1_count_is_exact_and_ties_go_to_earlier_positions(k_percent, count):
    excess = torch.zeros(2, 6)  # all tied
    valid = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])
    selected = rho1_select(excess, valid, k_percent)
    assert int(selected.sum()) == count
    order = [(b, t) for b in range(2) for t in range(6) if valid[b, t]]
    assert [selected[b, t].item() for b, t in order] == [1.0] * count + [0.0] * (10 - count)


def test_rho1_with_no_valid_tokens_selects_nothing():
    assert rho1_select(torch.rand(2, 3), torch.zeros(2, 3), 0.5).sum() == 0


def test_rho1_rejects_percentages():
    with pytest.raises(ValueError, match="did you mean 0.6"):
        rho1_select(torch.rand(1, 3), torch.ones(1, 3), 60)


def test_rho1_excess_is_policy_minus_reference_on_the_same_targets():
    policy, labels = _random_batch(6)
    reference = policy.detach() * 0.5
    excess, valid = rho1_excess(policy[:, :, 0], reference[:, :, 0], labels, 1)
    ce_policy, _ = per_token_ce(policy[:, :, 0], labels, 1)
    ce_reference, _ = per_token_ce(reference[:, :, 0], labels, 1)
    torch.testing.assert_close(excess, (ce_policy - ce_reference).detach() * valid)
    assert not excess.requires_grad


def test_nan_weights_on_non_targets_do_not_reach_the_gradient():
    logits, labels = _random_batch(7)
    weights = torch.ones(labels.shape, dtype=torch.float64)
    weights[labels == -100] = float("nan")
    weights[:, 0] = float("nan")  # never a target
    (grad,) = torch.autograd.grad(mtp_loss(logits, labels, weights).weighted, logits)
    assert torch.isfinite(grad).all()
