"""Train/validation split by problem (DESIGN §3).

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
