"""Raw problems → Alpaca records, and the split by problem."""

from __future__ import annotations

from typing import Any

import pytest

from weighted_mtp.data import PYTHON2, PYTHON3, problems_to_records, split_by_problem

CPP = 2


def make_problem(
    name: str,
    n_correct: int = 3,
    n_incorrect: int = 2,
    description: str = "Read n and print n + 1.",
    difficulty: int = 7,
) -> dict[str, Any]:
    """A tiny CodeContests-shaped problem with one C++ and one Python 2 solution mixed in."""
    correct = [f"print(int(input()) + 1)  # {name} ok {i}\n" for i in range(n_correct)]
    incorrect = [f"print(int(input()))  # {name} bad {i}\n" for i in range(n_incorrect)]
    return {
        "name": name,
        "description": description,
        "public_tests": {"input": ["1\n", "5\n"], "output": ["2\n", "6\n"]},
        "solutions": {
            "language": [CPP, *[PYTHON3] * n_correct, PYTHON2],
            "solution": ["int main() {}", *correct, "print 1"],
        },
        "incorrect_solutions": {"language": [PYTHON3] * n_incorrect, "solution": incorrect},
        "difficulty": difficulty,
    }


def test_records_have_alpaca_fields_and_trace_back_to_raw_indices() -> None:
    records = problems_to_records([make_problem("p1")], max_solutions_per_problem=None, seed=0)

    assert [r["task_id"] for r in records] == [
        "p1/correct/1",  # index 0 is the C++ solution, skipped
        "p1/correct/2",
        "p1/correct/3",  # index 4 is Python 2, skipped
        "p1/incorrect/0",
        "p1/incorrect/1",
    ]
    first = records[0]
    assert set(first) == {
        "instruction", "input", "output", "task_id", "problem_id", "is_correct", "difficulty"
    }
    assert first["input"] == ""
    assert first["output"] == "print(int(input()) + 1)  # p1 ok 0\n"
    assert first["problem_id"] == "p1"
    assert first["difficulty"] == 7
    assert [r["is_correct"] for r in records] == [True, True, True, False, False]


def test_instruction_appends_first_public_test_when_statement_has_no_example() -> None:
    record = problems_to_records([make_problem("p1")], None, seed=0)[0]

    assert record["instruction"] == (
        "Read n and print n + 1.\n\nExample\n\nInput\n\n1\n\nOutput\n\n2"
    )


def test_instruction_keeps_statement_that_already_has_examples() -> None:
    description = "Print n + 1.\n\nExamples\n\nInput\n\n1\n\nOutput\n\n2\n"
    problem = make_problem("p1", description=description)

    record = problems_to_records([problem], None, seed=0)[0]

    assert record["instruction"] == description.strip()


def test_python2_is_kept_only_when_asked() -> None:
    records = problems_to_records(
        [make_problem("p1")], None, seed=0, languages=(PYTHON2, PYTHON3)
    )

    assert "p1/correct/4" in {r["task_id"] for r in records}


def test_cap_is_per_class_and_seeded() -> None:
    problems = [make_problem(f"p{i}", n_correct=10, n_incorrect=6) for i in range(5)]

    records = problems_to_records(problems, max_solutions_per_problem=4, seed=1)
    again = problems_to_records(problems, max_solutions_per_problem=4, seed=1)
    other_seed = problems_to_records(problems, max_solutions_per_problem=4, seed=2)

    assert records == again
    assert [r["task_id"] for r in records] != [r["task_id"] for r in other_seed]
    for i in range(5):
        mine = [r for r in records if r["problem_id"] == f"p{i}"]
        assert sum(r["is_correct"] for r in mine) == 4
        assert sum(not r["is_correct"] for r in mine) == 4
    assert len({r["task_id"] for r in records}) == len(records) == 40


def test_sample_of_one_problem_does_not_depend_on_the_others() -> None:
    alone = problems_to_records([make_problem("p1", n_correct=10)], 3, seed=5)
    with_others = problems_to_records(
        [make_problem("p0", n_correct=10), make_problem("p1", n_correct=10)], 3, seed=5
    )

    assert alone == [r for r in with_others if r["problem_id"] == "p1"]


def test_missing_incorrect_solutions_means_none() -> None:
    problem = make_problem("p1")
    del problem["incorrect_solutions"]

    records = problems_to_records([problem], None, seed=0)

    assert all(r["is_correct"] for r in records) and len(records) == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("description"), r"problem 'bad': 'description'"),
        (lambda p: p.update(difficulty="hard"), r"problem 'bad': 'difficulty'"),
        (lambda p: p["solutions"]["language"].pop(), r"problem 'bad': solutions\.language has"),
        (lambda p: p.update(incorrect_solutions=[1]), r"problem 'bad': 'incorrect_solutions'"),
        (lambda p: p["solutions"]["solution"].__setitem__(1, None), r"solutions\[1\]"),
    ],
)
def test_malformed_problem_is_named(mutate: Any, message: str) -> None:
    problem = make_problem("bad")
    mutate(problem)

    with pytest.raises(ValueError, match=message):
        problems_to_records([make_problem("ok"), problem], None, seed=0)


def test_duplicate_and_unnamed_problems_are_rejected() -> None:
    with pytest.raises(ValueError, match="problem 'p1': duplicate name"):
        problems_to_records([make_problem("p1"), make_problem("p1")], None, seed=0)
    with pytest.raises(ValueError, match="problem #0: 'name'"):
        problems_to_records([{"description": "x"}], None, seed=0)
    with pytest.raises(ValueError, match="max_solutions_per_problem"):
        problems_to_records([make_problem("p1")], 0, seed=0)


# --- split by problem -------------------------------------------------------------------


def _records(n_problems: int, per_problem: int = 3) -> list[dict[str, Any]]:
    return [
        {"problem_id": f"p{p:03d}", "task_id": f"p{p:03d}/correct/{i}"}
        for p in range(n_problems)
        for i in range(per_problem)
    ]


def test_split_never_shares_a_problem_and_keeps_every_record() -> None:
    records = _records(50)

    train, validation = split_by_problem(records, validation_fraction=0.2, seed=3)

    train_ids = {r["problem_id"] for r in train}
    validation_ids = {r["problem_id"] for r in validation}
    assert not train_ids & validation_ids
    assert len(validation_ids) == 10  # round(0.2 * 50)
    assert sorted(r["task_id"] for r in train + validation) == sorted(
        r["task_id"] for r in records
    )


def test_split_is_seeded_and_independent_of_record_order() -> None:
    records = _records(40)

    first = split_by_problem(records, 0.1, seed=7)
    again = split_by_problem(list(reversed(records)), 0.1, seed=7)
    other = split_by_problem(records, 0.1, seed=8)

    def ids(split: list[dict[str, Any]]) -> set[str]:
        return {r["problem_id"] for r in split}

    assert ids(first[1]) == ids(again[1])
    assert ids(first[1]) != ids(other[1])
    assert len(ids(first[1])) == 4


def test_split_keeps_both_sides_non_empty() -> None:
    train, validation = split_by_problem(_records(2), validation_fraction=0.01, seed=0)
    assert len(train) == len(validation) == 3

    train, validation = split_by_problem(_records(3), validation_fraction=0.99, seed=0)
    assert len({r["problem_id"] for r in train}) == 1

    train, validation = split_by_problem(_records(1), validation_fraction=0.5, seed=0)
    assert (len(train), len(validation)) == (3, 0)


def test_split_default_fraction_is_ten_percent() -> None:
    _, validation = split_by_problem(_records(100, per_problem=1))
    assert len(validation) == 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fraction_outside_open_unit_interval(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        split_by_problem(_records(5), fraction, seed=0)


def test_split_names_a_record_without_problem_id() -> None:
    with pytest.raises(ValueError, match="record 1: missing 'problem_id'"):
        split_by_problem([{"problem_id": "a"}, {"task_id": "x"}], 0.5, seed=0)
