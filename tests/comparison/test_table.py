"""The comparison table on synthetic runs whose differences are known."""

from __future__ import annotations

import math
import random

import pytest

from weighted_mtp.comparison.runs import plan_runs
from weighted_mtp.comparison.table import RunResult, comparison_table, metric_order, run_result, to_markdown

PROBLEMS = [f"p{i}" for i in range(60)]


def _result(recipe: str, seed: int, scores: dict[str, float], **critic: float) -> RunResult:
    return RunResult(recipe, seed, {"pass@1": scores}, critic=critic, wall_time_s=60.0 * (seed + 1))


def test_paired_difference_recovers_a_known_shift_and_ignores_problem_difficulty():
    rng = random.Random(0)
    results = []
    for seed in (0, 1, 2):
        difficulty = {p: rng.random() * 0.8 for p in PROBLEMS}  # shared by both recipes
        noise = {p: rng.gauss(0.0, 0.02) for p in PROBLEMS}
        results.append(_result("baseline", seed, difficulty))
        results.append(_result("verifiable", seed, {p: difficulty[p] + 0.1 + noise[p] for p in PROBLEMS},
                               val_value_auroc=0.7 + 0.01 * seed))
    table = comparison_table(results, ["pass@1"], n_resamples=500)
    rows = {row["recipe"]: row for row in table["rows"]}
    delta = rows["verifiable"]["vs_baseline"]["pass@1"]
    assert delta["units"] == 3 * len(PROBLEMS)
    assert delta["mean"] == pytest.approx(0.1, abs=0.01)
    low, high = delta["ci95"]
    assert low < 0.1 < high and high - low < 0.02  # paired: the difficulty spread cancels
    # unpaired, each recipe's own interval is wide (difficulty varies 0..0.8)
    own_low, own_high = rows["verifiable"]["metrics"]["pass@1"]["ci95"]
    assert own_high - own_low > 5 * (high - low)
    assert rows["verifiable"]["val_value_auroc"] == pytest.approx(0.71)
    assert rows["baseline"]["wall_time_s"] == pytest.approx(120.0)
    assert math.isnan(rows["baseline"]["val_value_auroc"])


def test_no_difference_gives_an_interval_around_zero():
    rng = random.Random(1)
    results = []
    for seed in (0, 1):
        for recipe in ("baseline", "rho1"):
            results.append(_result(recipe, seed, {p: float(rng.random() < 0.3) for p in PROBLEMS}))
    delta = {row["recipe"]: row for row in comparison_table(results, ["pass@1"])["rows"]}["rho1"]["vs_baseline"]["pass@1"]
    assert delta["ci95"][0] < 0.0 < delta["ci95"][1]


def test_only_shared_units_are_paired_and_markdown_has_every_recipe():
    results = [_result("baseline", 0, {"a": 1.0, "b": 0.0}), _result("next_token", 0, {"a": 0.0, "b": 0.0, "c": 1.0})]
    table = comparison_table(results, ["pass@1"], n_resamples=200)
    row = {r["recipe"]: r for r in table["rows"]}["next_token"]
    assert row["vs_baseline"]["pass@1"]["units"] == 2 and row["vs_baseline"]["pass@1"]["mean"] == -0.5
    markdown = to_markdown(table)
    assert "| baseline | 1 |" in markdown and "| next_token | 1 |" in markdown and "(control)" in markdown


def test_run_result_scores_the_test_split_only_and_reads_the_critic():
    rows = [{"problem": "a", "sample": s, "passed": s == 0, "split": "test"} for s in range(2)]
    rows += [{"problem": "a", "sample": -1, "passed": True, "split": "test"},
             {"problem": "t", "sample": 0, "passed": True, "split": "train"}]
    result = run_result("verifiable", 0, rows, [1, 2], {"val_value_auroc": 0.8}, 10.0, False)
    untrained = run_result("baseline", 0, rows, [1], {"val_value_auroc": 0.45}, 10.0, False)
    assert math.isnan(untrained.critic["val_value_auroc"])  # no critic in the recipe: not reported
    assert result.scores["pass@1"] == {"a": 0.5} and result.scores["pass@2"] == {"a": 1.0}
    assert result.scores["greedy_pass@1"] == {"a": 1.0} and result.critic["val_value_auroc"] == 0.8
    with pytest.raises(ValueError, match="no scored test completions"):
        run_result("verifiable", 0, rows[-1:], [1], None, 1.0, False)
    assert metric_order([10, 1, 5]) == ["pass@1", "pass@5", "pass@10", "greedy_pass@1"]


def test_plan_is_seed_major_with_the_baseline_first_and_rejects_bad_input():
    specs = plan_runs(["rho1", "baseline"], [0, 1], "study")
    assert [(s.recipe, s.seed) for s in specs] == [("baseline", 0), ("rho1", 0), ("baseline", 1), ("rho1", 1)]
    assert specs[0].experiment == "compare-study-baseline-seed0"
    assert "training.seed=1" in specs[2].kedro_params(mlflow=True)
    assert "mlflow.enabled=false" in specs[2].kedro_params(mlflow=False)
    with pytest.raises(ValueError, match="unknown"):
        plan_runs(["baseline", "ppo"], [0], "study")
    with pytest.raises(ValueError, match="repeats a seed"):
        plan_runs(["baseline"], [0, 0], "study")
