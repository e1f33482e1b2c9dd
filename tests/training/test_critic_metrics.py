"""Critic-quality figures against small cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from training_helpers import CPU, run_stage

from weighted_mtp.data import MTPCollator, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.training.critic_metrics import (
    CriticRow,
    auroc,
    auroc_within_groups,
    bug_hits,
    bug_span,
    critic_figures,
    critic_rows,
    with_global_weights,
)
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.config.schema import Stage2Config
from weighted_mtp.training.objective import objective_for

TD = Stage2Config(beta=1.0, gamma=1.0, td_lambda=0.0, initial_value=0.5, weight_clip_min=0.1,
                  weight_clip_max=5.0, normalize_mean=False)


def test_auroc_counts_pairs_and_half_ties():
    # positives 0.9, 0.4; negatives 0.5, 0.4, 0.1
    # 0.9 beats all 3; 0.4 beats 0.1, ties 0.4, loses to 0.5 -> (3 + 1 + 0.5) / 6
    scores = [0.9, 0.4, 0.5, 0.4, 0.1]
    labels = [True, True, False, False, False]
    assert auroc(scores, labels) == pytest.approx(4.5 / 6)
    assert auroc([1.0, 0.0], [False, True]) == 0.0
    assert math.isnan(auroc([0.3, 0.4], [True, True]))


def test_auroc_within_groups_ignores_cross_problem_pairs():
    # Problem a: correct 0.2 vs incorrect 0.1 (a win); problem b: correct 0.9 vs incorrect
    # 0.95 (a loss). Across problems the easy/hard split would dominate; within: 1 of 2.
    scores = [0.2, 0.1, 0.9, 0.95]
    labels = [True, False, True, False]
    groups = ["a", "a", "b", "b"]
    within, pairs, n_groups = auroc_within_groups(scores, labels, groups)
    assert (within, pairs, n_groups) == (0.5, 2, 2)
    assert auroc(scores, labels) == pytest.approx(2 / 4)  # 0.9>0.1, 0.2>0.1; 0.2<0.95, 0.9<0.95
    # A problem with one class only contributes nothing.
    within, pairs, n_groups = auroc_within_groups(scores + [0.0], labels + [True], groups + ["c"])
    assert (within, pairs, n_groups) == (0.5, 2, 2)


def test_bug_span_marks_replaced_inserted_and_deleted_tokens():
    correct = [1, 2, 3, 4, 5]
    assert bug_span([1, 2, 9, 4, 5], [correct]) == {2}          # replaced
    assert bug_span([1, 2, 3, 7, 7, 4, 5], [correct]) == {3, 4}  # inserted
    assert bug_span([1, 2, 4, 5], [correct]) == {2}             # deleted 3: the token after the gap
    assert bug_span([1, 2, 3, 4, 5], [correct]) == frozenset()  # identical
    assert bug_span([1, 2, 9, 4, 5], []) == frozenset()         # nothing to diff against
    # The nearest correct solution is used: against [9, 9, 9, 4, 5] only position 0..2 would differ
    # differently; [1, 2, 3, 4, 5] is closer to [1, 2, 9, 4, 5].
    assert bug_span([1, 2, 9, 4, 5], [[8, 8, 8, 8, 5], correct]) == {2}


def _row(problem, correct, tokens, deltas, weights=None, value=0.5):
    return CriticRow(problem, correct, value, tuple(tokens), tuple(deltas),
                     tuple(weights if weights is not None else deltas))


def test_bug_hits_against_hand_counts():
    rows = [
        _row("p", True, [1, 2, 3, 4], [0.0, 0.0, 0.0, 0.1]),
        # span {2} of 4 tokens; min delta at 2: a hit; weights tie at 0.1 on 1 and 2: half a hit
        _row("p", False, [1, 2, 9, 4], [0.0, -0.1, -0.5, 0.0], weights=[1.0, 0.1, 0.1, 1.0]),
        # span {1} of 4; min delta at 3: a miss
        _row("p", False, [1, 8, 3, 4], [0.0, 0.0, 0.1, -0.4], weights=[1.0, 1.0, 1.0, 0.1]),
        # no correct solution of problem q: left out
        _row("q", False, [5, 6], [-1.0, 0.0]),
    ]
    hits = bug_hits(rows)
    assert hits.responses == 2
    assert hits.delta_hit_rate == pytest.approx(0.5)
    assert hits.weight_hit_rate == pytest.approx((0.5 + 0.0) / 2)
    assert hits.chance == pytest.approx((1 / 4 + 1 / 4) / 2)
    # Without the final (EOS) token: response 1 still hits; response 2's first 3 tokens tie
    # at 0.0 on positions 0 and 1, one of them in the span: half a hit
    assert hits.program_hit_rate == pytest.approx((1 + 0.5) / 2)
    assert hits.program_chance == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_the_terminal_token_is_left_out_of_the_program_hit_rate_only():
    correct = _row("p", True, [1, 2, 3, 4], [0.0] * 4)
    # the outcome's surprise at the EOS is the lowest δ; the bug token 9 is the lowest before it
    bad = _row("p", False, [1, 9, 3, 4], [0.0, -0.3, 0.0, -0.6])
    hits = bug_hits([correct, bad])
    assert (hits.delta_hit_rate, hits.program_hit_rate) == (0.0, 1.0)
    truncated = CriticRow("p", False, 0.5, (1, 9, 3, 4), (0.0, -0.3, 0.0, -0.6), (1.0,) * 4, truncated=True)
    assert bug_hits([correct, truncated]).program_hit_rate == 0.0  # no EOS to leave out


def test_critic_figures_per_class_means():
    rows = [
        _row("p", True, [1, 2], [0.2, 0.4], weights=[1.0, 3.0], value=0.8),
        _row("p", False, [1, 3], [-0.2, -0.6], weights=[0.5, 0.1], value=0.3),
    ]
    figures = critic_figures(rows)
    assert figures["value_auroc"] == 1.0 and figures["value_auroc_within_problem"] == 1.0
    assert figures["value_mean_correct"] == 0.8 and figures["value_mean_incorrect"] == 0.3
    assert figures["weights_mean_correct"] == pytest.approx(2.0)
    assert figures["weights_mean_incorrect"] == pytest.approx(0.3)
    assert figures["td_mean_incorrect"] == pytest.approx(-0.4)
    assert figures["bug_responses"] == 1.0 and figures["bug_hit_chance"] == 0.5


def test_critic_rows_read_the_last_trained_state_and_response_tokens(tokenizer, val_records):
    dataset = TokenizedDataset(val_records[:3], tokenizer, 64)
    batch = MTPCollator(resolve_pad_token_id(tokenizer))([dataset[i] for i in range(3)])
    values = torch.arange(batch["input_ids"].numel(), dtype=torch.float32).reshape(batch["input_ids"].shape)
    rows = critic_rows(values, batch, TD)
    assert len(rows) == 3
    for b, row in enumerate(rows):
        positions = torch.nonzero(batch["loss_mask"][b]).flatten()
        assert row.tokens == tuple(batch["input_ids"][b, positions].tolist())
        assert row.last_value == float(values[b, positions[-1] - 1])
        assert len(row.deltas) == len(row.advantages) == len(row.tokens) and row.weights == ()
        # the last token is judged by the outcome: δ_T = R − V_{T−1}
        assert row.deltas[-1] == pytest.approx(float(batch["rewards"][b]) - row.last_value)
        assert row.is_correct == bool(batch["is_correct"][b])


def test_evaluate_stage_reports_the_critic(make_adapter, tokenizer, val_records, make_config):
    config = make_config()
    adapter = make_adapter().eval()
    dataset = TokenizedDataset(val_records, tokenizer, 64)
    collate = MTPCollator(resolve_pad_token_id(tokenizer))
    batches = [collate([dataset[i] for i in range(len(dataset))])]
    figures = evaluate_stage(adapter, batches, objective_for("stage1", config.training, "verifiable"), CPU)
    with torch.no_grad():
        values = adapter.values_from_trunk(adapter.trunk_forward(batches[0]["input_ids"]))
    td = config.training.stage2
    expected = critic_figures(with_global_weights(critic_rows(values, batches[0], td), td))
    for key in ("value_auroc", "value_auroc_within_problem", "bug_hit_rate", "bug_hit_chance"):
        assert figures[f"val_{key}"] == pytest.approx(expected[key], nan_ok=True)
    assert figures["val_bug_responses"] == 2  # one swapped-operand mutant per problem
    assert 0.0 <= figures["val_value_auroc"] <= 1.0


def test_first_error_targets_drop_at_the_bug():
    from weighted_mtp.training.losses import first_error_targets

    rewards = torch.tensor([1.0, 0.0, 0.0])
    first_error = torch.tensor([-1, 3, -1])  # correct; bug at position 3; bug unknown
    targets = first_error_targets(rewards, first_error, 6)
    assert targets.tolist() == [[1.0] * 6, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [0.0] * 6]


def test_mark_first_errors_finds_the_first_differing_response_token():
    from weighted_mtp.data.diff import NO_ERROR, mark_first_errors

    rows = [  # prompt of 2 tokens (labels -100), then the response
        {"input_ids": [7, 7, 1, 2, 3, 4], "labels": [-100, -100, 1, 2, 3, 4], "is_correct": True, "problem_id": "p"},
        {"input_ids": [7, 7, 1, 2, 9, 4], "labels": [-100, -100, 1, 2, 9, 4], "is_correct": False, "problem_id": "p"},
        {"input_ids": [7, 1, 2], "labels": [-100, 1, 2], "is_correct": False, "problem_id": "q"},
    ]
    assert mark_first_errors(rows) == 1
    assert [row["first_error"] for row in rows] == [NO_ERROR, 4, NO_ERROR]


def test_stage1_with_first_error_targets_regresses_prefixes_to_one(make_adapter, tokenizer, train_records,
                                                                   val_records, make_config, tmp_path):
    config = make_config({"training": {"stage1": {"n_epochs": 0.4, "value_target": "first_error"}}})
    outcome = make_config({"training": {"stage1": {"n_epochs": 0.4}}})
    runs = [run_stage("stage1", make_adapter(), tokenizer, train_records, val_records, cfg, tmp_path / name)
            for name, cfg in (("fe", config), ("out", outcome))]
    # Same model, same data: only the targets differ, so the value losses differ.
    assert runs[0].metrics["val_value_loss"] != pytest.approx(runs[1].metrics["val_value_loss"])


def test_stage2_with_first_error_targets_trains(make_adapter, tokenizer, train_records, val_records, make_config,
                                                tmp_path):
    config = make_config({"training": {"stage2": {"n_epochs": 0.4, "value_target": "first_error"}}})
    result = run_stage("stage2", make_adapter(), tokenizer, train_records, val_records, config, tmp_path)
    assert result.global_step == 2 and math.isfinite(result.metrics["val_value_loss"])
    assert result.metrics["val_bug_responses"] == 2


def test_weights_are_whitened_over_all_rows_whatever_the_batching():
    from weighted_mtp.training.critic_metrics import with_global_weights

    rng = torch.Generator().manual_seed(3)
    rows = [CriticRow("p", i % 2 == 0, 0.5, tuple(range(n)), tuple(torch.randn(n, generator=rng).tolist()), (),
                      advantages=tuple(torch.randn(n, generator=rng).tolist())) for i, n in enumerate([5, 9, 3, 7])]
    together = with_global_weights(rows, TD)
    x = torch.tensor([a for row in rows for a in row.advantages], dtype=torch.float64)
    z = (x - x.mean()) / (x.std() + 1e-8)
    expected = torch.exp(z / TD.beta).clamp(TD.weight_clip_min, TD.weight_clip_max)
    assert torch.allclose(torch.tensor([w for row in together for w in row.weights], dtype=torch.float64), expected)
    # the same rows met in another order (another sharding) get the same weights
    shuffled = with_global_weights(rows[::-1], TD)[::-1]
    for first, second in zip(shuffled, together):
        assert first.weights == pytest.approx(second.weights)
