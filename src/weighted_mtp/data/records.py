"""Raw programming problems (CodeContests fields) → Alpaca training records (docs/internal/CONTRACTS.md).

A raw problem uses the field names of Hugging Face ``deepmind/code_contests`` so that users can
swap the real dataset in through the catalog::

    {"name": str, "description": str, "difficulty": int,
     "public_tests": {"input": [str, ...], "output": [str, ...]},
     "solutions": {"language": [int, ...], "solution": [str, ...]},
     "incorrect_solutions": {"language": [int, ...], "solution": [str, ...]}, ...}

Each kept solution becomes one record::

    {"instruction", "input": "", "output", "task_id", "problem_id", "is_correct", "difficulty"}

Only Python 3 solutions (CodeContests language id 3) are kept by default: the embedded
dataset's labels come from running solutions under Python 3, and Python 2 code (id 1) would
teach the model syntax that fails there.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

# CodeContests ``language`` ids: 0 unknown, 1 Python 2, 2 C++, 3 Python 3, 4 Java.
PYTHON2 = 1
PYTHON3 = 3

# CodeContests statements end with an "Example"/"Examples" section; only descriptions without
# one get the first public test appended, so the model always sees the I/O format once.
_EXAMPLE_HEADING = re.compile(r"^\s*examples?\s*:?\s*$", re.IGNORECASE | re.MULTILINE)

_CLASSES = (("solutions", True, "correct"), ("incorrect_solutions", False, "incorrect"))

ALPACA_FIELDS = ("instruction", "output", "is_correct", "problem_id", "task_id")
"""The fields of an Alpaca record that tokenisation and training read."""


def problems_to_records(
    problems: Iterable[Mapping[str, Any]],
    max_solutions_per_problem: int | None,
    seed: int,
    languages: Collection[int] = (PYTHON3,),
) -> list[dict[str, Any]]:
    """Turns raw problems into Alpaca records, at most N solutions per problem and class.

    The cap keeps problems with hundreds of accepted solutions from dominating the data; the
    solutions kept are a seeded random sample, drawn per problem from ``(seed, name)`` so the
    choice for one problem does not change when other problems are added or reordered.
    Records keep the solutions' original order and indices (``task_id``
    ``"{name}/correct/{i}"`` or ``"{name}/incorrect/{i}"``, ``i`` the index in the raw list)
    so any record can be traced back to its source.

    Args:
        problems: Raw problems in CodeContests form (see the module docstring).
        max_solutions_per_problem: Most solutions kept per problem and per class (correct,
            incorrect); ``None`` keeps all.
        seed: Seed for the choice of solutions.
        languages: CodeContests language ids to keep (default Python 3 only).

    Returns:
        Records in problem order, correct solutions before incorrect ones.

    Raises:
        ValueError: If ``max_solutions_per_problem`` is below 1, two problems share a name,
            or a problem is malformed (the message names the problem and the field).
    """
    if max_solutions_per_problem is not None and max_solutions_per_problem < 1:
        raise ValueError(
            f"max_solutions_per_problem must be >= 1 or None, got {max_solutions_per_problem}"
        )
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, problem in enumerate(problems):
        name = _problem_name(problem, position)
        if name in seen:
            raise ValueError(f"problem {name!r}: duplicate name (problem #{position})")
        seen.add(name)
        records.extend(
            _problem_records(problem, name, max_solutions_per_problem, seed, set(languages))
        )
    return records


def _problem_records(
    problem: Mapping[str, Any],
    name: str,
    cap: int | None,
    seed: int,
    languages: set[int],
) -> list[dict[str, Any]]:
    """Builds the records of one problem: its sampled correct, then incorrect, solutions."""
    instruction = build_instruction(problem, name)
    difficulty = _difficulty(problem, name)
    rng = random.Random(f"{seed}:{name}")
    records = []
    for field, is_correct, label in _CLASSES:
        solutions = _solutions(problem, field, name, languages)
        for index in _sample(sorted(solutions), cap, rng):
            records.append(
                {
                    "instruction": instruction,
                    "input": "",
                    "output": solutions[index],
                    "task_id": f"{name}/{label}/{index}",
                    "problem_id": name,
                    "is_correct": is_correct,
                    "difficulty": difficulty,
                }
            )
    return records


def build_instruction(problem: Mapping[str, Any], name: str | None = None) -> str:
    """The record instruction: the statement, plus one example when it has none.

    The Alpaca ``input`` stays empty; examples belong to the statement, as in CodeContests.

    Args:
        problem: A raw problem.
        name: The problem's name, for error messages (defaults to ``problem["name"]``).

    Returns:
        The description, stripped, with an ``Example`` section built from the first public
        test appended when the description has no ``Example(s)`` heading line.

    Raises:
        ValueError: If the description is missing or empty, or ``public_tests`` is malformed.
    """
    name = name if name is not None else str(problem.get("name"))
    description = problem.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"problem {name!r}: 'description' must be a non-empty string")
    description = description.strip()
    example = _first_public_test(problem, name)
    if example is None or _EXAMPLE_HEADING.search(description):
        return description
    test_input, test_output = example
    return (
        f"{description}\n\nExample\n\nInput\n\n{test_input.rstrip()}\n\n"
        f"Output\n\n{test_output.rstrip()}"
    )


def _first_public_test(problem: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """The first public (input, output) pair, or None when the problem has no public tests."""
    tests = problem.get("public_tests")
    if tests is None:
        return None
    inputs, outputs = _parallel_lists(tests, "public_tests", ("input", "output"), name)
    if not inputs:
        return None
    if not isinstance(inputs[0], str) or not isinstance(outputs[0], str):
        raise ValueError(f"problem {name!r}: public_tests entries must be strings")
    return inputs[0], outputs[0]


def _solutions(
    problem: Mapping[str, Any], field: str, name: str, languages: set[int]
) -> dict[int, str]:
    """Maps raw index → source for the non-empty solutions of a kept language.

    A missing ``incorrect_solutions`` (or ``solutions``) field means "none"; a present but
    malformed one is an error.
    """
    block = problem.get(field)
    if block is None:
        return {}
    language_ids, sources = _parallel_lists(block, field, ("language", "solution"), name)
    kept = {}
    for index, (language, source) in enumerate(zip(language_ids, sources)):
        language_ok = isinstance(language, int) and not isinstance(language, bool)
        if not language_ok or not isinstance(source, str):
            raise ValueError(
                f"problem {name!r}: {field}[{index}] needs an int language and a str solution, "
                f"found {type(language).__name__} and {type(source).__name__}"
            )
        if language in languages and source.strip():
            kept[index] = source
    return kept


def _parallel_lists(
    block: Any, field: str, keys: tuple[str, str], name: str
) -> tuple[list[Any], list[Any]]:
    """Reads the two equal-length lists of a CodeContests struct-of-lists field."""
    if not isinstance(block, Mapping) or not all(
        isinstance(block.get(key), list) for key in keys
    ):
        raise ValueError(
            f"problem {name!r}: {field!r} must be an object with list fields {list(keys)}"
        )
    first, second = block[keys[0]], block[keys[1]]
    if len(first) != len(second):
        raise ValueError(
            f"problem {name!r}: {field}.{keys[0]} has {len(first)} entries but "
            f"{field}.{keys[1]} has {len(second)}"
        )
    return first, second


def _sample(indices: list[int], cap: int | None, rng: random.Random) -> list[int]:
    """A seeded sample of at most ``cap`` indices, returned in ascending order."""
    if cap is None or len(indices) <= cap:
        return indices
    return sorted(rng.sample(indices, cap))


def _problem_name(problem: Any, position: int) -> str:
    """The problem's name, which becomes its ``problem_id``."""
    if not isinstance(problem, Mapping):
        raise ValueError(f"problem #{position}: expected an object, found {type(problem).__name__}")
    name = problem.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"problem #{position}: 'name' must be a non-empty string, got {name!r}")
    return name


def _difficulty(problem: Mapping[str, Any], name: str) -> int:
    """The problem's integer difficulty (CodeContests: 0 = unknown)."""
    difficulty = problem.get("difficulty")
    if isinstance(difficulty, bool) or not isinstance(difficulty, int):
        raise ValueError(f"problem {name!r}: 'difficulty' must be an int, got {difficulty!r}")
    return difficulty


def check_alpaca_record(record: Mapping[str, Any]) -> None:
    """Checks that a record has the fields training reads and a boolean ``is_correct``.

    ``is_correct`` is the label a whole recipe rests on, and Python would read a quoted
    ``"false"`` as true: anything but a JSON boolean is refused, not converted.

    Args:
        record: An Alpaca record, e.g. one line of ``train.jsonl``.

    Raises:
        ValueError: A field is missing or ``is_correct`` is not a bool; the message says
            which, and the caller adds where (file and line, or the record's task id).
    """
    missing = [key for key in ALPACA_FIELDS if key not in record]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    label = record["is_correct"]
    if not isinstance(label, bool):
        raise ValueError(
            f"'is_correct' must be true or false (a JSON boolean), found {json.dumps(label)}; "
            "write true or false without quotes"
        )
