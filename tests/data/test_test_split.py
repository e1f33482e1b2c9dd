"""The held-out test split: by problem, stratified by family, seeded, disjoint."""

from __future__ import annotations

from collections import Counter

import pytest

from weighted_mtp.data import read_jsonl, split_test_problems
from weighted_mtp.data.split import split_by_problem
from weighted_mtp.data.records import problems_to_records
from tests.project_runs import RAW


def synthetic(sizes: dict[str, int]) -> list[dict]:
    return [{"name": f"{family}_{i}", "family": family} for family, n in sizes.items() for i in range(n)]


def test_each_family_is_held_out_in_proportion() -> None:
    problems = synthetic({"a": 100, "b": 10, "c": 3, "d": 1})
    development, test = split_test_problems(problems, test_fraction=0.3, seed=7)
    held = Counter(p["family"] for p in test)
    assert held == {"a": 30, "b": 3, "c": 1}  # a single problem stays for training
    assert len(development) + len(test) == len(problems)
    assert not {p["name"] for p in development} & {p["name"] for p in test}


def test_split_depends_on_names_and_seed_not_order() -> None:
    problems = synthetic({"a": 20, "b": 20})
    _, first = split_test_problems(problems, 0.25, seed=1)
    _, reordered = split_test_problems(list(reversed(problems)), 0.25, seed=1)
    _, other_seed = split_test_problems(problems, 0.25, seed=2)
    assert {p["name"] for p in first} == {p["name"] for p in reordered}
    assert {p["name"] for p in first} != {p["name"] for p in other_seed}


def test_shipped_dataset_gives_at_least_200_test_problems_in_every_family() -> None:
    problems = read_jsonl(RAW)
    development, test = split_test_problems(problems, test_fraction=0.3, seed=42)
    assert len(test) >= 200
    assert {p["family"] for p in test} == {p["family"] for p in problems}
    train, validation = split_by_problem(problems_to_records(development, 4, 42), 0.1, 42)
    seen = {r["problem_id"] for r in train} | {r["problem_id"] for r in validation}
    assert not seen & {p["name"] for p in test}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction_names_the_key(fraction: float) -> None:
    with pytest.raises(ValueError, match="dataset.test_fraction"):
        split_test_problems(synthetic({"a": 4}), fraction)


def test_problems_without_names_or_with_duplicates_are_refused() -> None:
    with pytest.raises(ValueError, match="problem #1: missing 'name'"):
        split_test_problems([{"name": "x"}, {"family": "a"}], 0.5)
    with pytest.raises(ValueError, match="duplicate name 'x'"):
        split_test_problems([{"name": "x"}, {"name": "x"}], 0.5)
