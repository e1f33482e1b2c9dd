"""Splits by problem: held-out test problems (by family), then train/validation.

Splitting by record would put other solutions of a validation problem in the training set,
and the validation loss would then measure memorisation of the problem, not generalisation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any


def split_by_problem(
    records: Sequence[Mapping[str, Any]],
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Splits records into train and validation so that each problem lands in one split.

    Problems (distinct ``problem_id``) are sorted, shuffled with ``random.Random(seed)`` and
    the first ``round(validation_fraction * n_problems)`` go to validation, so the split
    depends only on the set of problem ids and the seed, not on record order. With two or
    more problems each split gets at least one; a single problem goes to train. Records keep
    their input order within each split.

    Args:
        records: Records with a ``problem_id`` key.
        validation_fraction: Share of problems (not records) for validation, in (0, 1).
        seed: Seed of the problem shuffle.

    Returns:
        ``(train, validation)``: new lists of (shallow-copied) records.

    Raises:
        ValueError: If ``validation_fraction`` is not in (0, 1) or a record has no
            ``problem_id`` (the message gives its index).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    problem_ids = [_problem_id(record, index) for index, record in enumerate(records)]
    validation_ids = _validation_problems(sorted(set(problem_ids)), validation_fraction, seed)
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    for record, problem_id in zip(records, problem_ids):
        (validation if problem_id in validation_ids else train).append(dict(record))
    return train, validation


def _validation_problems(problems: list[str], fraction: float, seed: int) -> set[str]:
    """Picks the validation problems: a seeded shuffle, clamped to leave both splits non-empty."""
    if len(problems) < 2:
        return set()
    n_validation = min(max(round(fraction * len(problems)), 1), len(problems) - 1)
    shuffled = list(problems)
    random.Random(seed).shuffle(shuffled)
    return set(shuffled[:n_validation])


def _problem_id(record: Mapping[str, Any], index: int) -> str:
    """The record's problem id, as a string (ids are compared and sorted)."""
    if not isinstance(record, Mapping) or "problem_id" not in record:
        raise ValueError(f"record {index}: missing 'problem_id' (needed to split by problem)")
    return str(record["problem_id"])


def split_test_problems(
    problems: Sequence[Mapping[str, Any]],
    test_fraction: float,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Holds out test problems, stratified by family, before any record is built.

    Within each family (``family`` key; problems without one share a stratum) the problem
    names are sorted, shuffled with a generator seeded from ``(seed, family)``, and the
    first ``round(test_fraction * size)`` go to the test split; a family of two or more
    problems keeps at least one for training and gives at least one to the test split. So
    each family is represented in proportion, and the split depends only on the problem
    names, their families and the seed — never on file order (docs/EVALUATION.md, "Split").

    Args:
        problems: Raw problems in CodeContests form (``name``, ``family``, tests…).
        test_fraction: Share of each family's problems held out, in (0, 1).
        seed: Seed of the per-family shuffles.

    Returns:
        ``(development, test)``: the problems left for training and validation, and the
        held-out ones, each in input order.

    Raises:
        ValueError: If ``test_fraction`` is not in (0, 1), or a problem has no ``name`` or
            shares it with another (the message gives the position).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"dataset.test_fraction must be in (0, 1), got {test_fraction}")
    families: dict[str, list[str]] = {}
    names: list[str] = []
    for position, problem in enumerate(problems):
        name = str(problem.get("name") or "") if isinstance(problem, Mapping) else ""
        if not name:
            raise ValueError(f"problem #{position}: missing 'name' (needed to split by problem)")
        names.append(name)
        families.setdefault(str(problem.get("family") or ""), []).append(name)
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"problem #{names.index(duplicate)}: duplicate name {duplicate!r}")
    held_out: set[str] = set()
    for family, members in families.items():
        held_out.update(_held_out(sorted(members), test_fraction, f"{seed}:{family}"))
    development = [dict(p) for p, n in zip(problems, names) if n not in held_out]
    test = [dict(p) for p, n in zip(problems, names) if n in held_out]
    return development, test


def _held_out(members: list[str], fraction: float, seed: str) -> list[str]:
    """The held-out names of one family: a seeded shuffle, both sides non-empty when possible."""
    if len(members) < 2:
        return []
    count = min(max(round(fraction * len(members)), 1), len(members) - 1)
    shuffled = list(members)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:count]
