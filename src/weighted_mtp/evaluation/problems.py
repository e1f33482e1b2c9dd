"""Held-out problems as evaluation needs them: their prompt, all their tests, their family.

A problem is judged against every test it has (public, private and generated), as
CodeContests does, so a program that only fits the example in the statement fails.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from weighted_mtp.data import build_instruction

TEST_FIELDS = ("public_tests", "private_tests", "generated_tests")


def problem_tests(problem: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``(stdin, expected stdout)`` pair of a CodeContests-style problem.

    Raises:
        ValueError: If the problem has no test at all, or a test block's input and output
            lists differ in length (the message names the problem and the field).
    """
    name = problem.get("name", "?")
    tests: list[tuple[str, str]] = []
    for field in TEST_FIELDS:
        block = problem.get(field) or {}
        inputs, outputs = list(block.get("input", [])), list(block.get("output", []))
        if len(inputs) != len(outputs):
            raise ValueError(f"problem {name!r}: {field} has {len(inputs)} inputs and "
                             f"{len(outputs)} outputs")
        tests.extend(zip(inputs, outputs))
    if not tests:
        raise ValueError(f"problem {name!r}: no tests in {', '.join(TEST_FIELDS)}")
    return tests


def problem_prompt(problem: Mapping[str, Any]) -> str:
    """The instruction the model sees: the same text training records carry."""
    return build_instruction(problem, problem.get("name"))


def problem_family(problem: Mapping[str, Any]) -> str:
    """The task family, or ``"unknown"`` for datasets without one (CodeContests)."""
    return str(problem.get("family") or "unknown")


def overlapping_problems(test_problems: Iterable[Mapping[str, Any]],
                         *record_sets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of test problems that also appear (as ``problem_id``) in training records."""
    seen = {str(record["problem_id"]) for records in record_sets for record in records}
    return sorted(str(p["name"]) for p in test_problems if str(p["name"]) in seen)


def sample_training_problems(raw_problems: Sequence[Mapping[str, Any]],
                             train_records: Iterable[Mapping[str, Any]], size: int,
                             seed: int) -> list[Mapping[str, Any]]:
    """A fixed, seeded sample of the problems the model was trained on (the sanity line).

    Only problems with a correct training record count: those are what stage 2 fits.
    """
    trained = {str(r["problem_id"]) for r in train_records if r.get("is_correct")}
    pool = sorted((p for p in raw_problems if str(p.get("name")) in trained), key=lambda p: str(p["name"]))
    if size >= len(pool):
        return pool
    return sorted(random.Random(seed).sample(pool, size), key=lambda p: str(p["name"]))
