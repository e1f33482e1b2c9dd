"""Generate, verify and write the embedded verifiable code dataset.

Two stages, kept apart so each can be tested on its own:

1. `generate_problems` draws problems from every task family with seeded generators and
   returns *unverified candidates*: statement, tests, intended-correct programs and
   mutants. It is pure and deterministic (no subprocesses).
2. `build_dataset` runs every candidate program against all of its problem's tests in the
   project's sandbox (`weighted_mtp.execution`, docs/EXECUTION.md) and files it by
   outcome: a program that passes goes to ``solutions``, one that fails to
   ``incorrect_solutions``, whatever it was meant to be. A mutant that happens to pass
   is therefore labelled correct; an intended-correct program that fails is a generator
   bug and stops the build.

The output uses the CodeContests field names so the real dataset can replace it through
the catalog. See docs/DATASET.md for the field list and the regeneration command.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from weighted_mtp.data.jsonl import write_jsonl
from weighted_mtp.execution import Job, Limits, Verdict, run_many

from .families import FAMILIES, Draft, Family

logger = logging.getLogger(__name__)

# CodeContests ``language`` id of Python 3.
PYTHON3 = 3
SOURCE = "weighted-mtp-embedded"
DEFAULT_N_PER_FAMILY = 100
DEFAULT_OUT_PATH = Path("data/01_raw/code_problems.jsonl")
# Per-test limit; every generated program finishes in milliseconds, so only a genuinely
# non-terminating program can reach it, and labels do not depend on machine speed.
DEFAULT_TIMEOUT_S = 5.0
# Address space of one labelling run, in MiB.
MEMORY_MB = 1024
# Consecutive draws without a new statement after which a family counts as exhausted.
_MAX_MISSES = 500
_MIN_TESTS, _MAX_TESTS = 5, 10


def statement_key(description: str) -> str:
    """The part of a description that must differ between problems of one family.

    The example section is excluded: it comes from random test data and would make any
    two draws look different even when their statements are identical.
    """
    return description.split("\nExample\n", 1)[0]


def _select_families(names: Iterable[str] | None) -> tuple[Family, ...]:
    """Resolve family names (None = all), failing loudly on a typo."""
    if names is None:
        return FAMILIES
    known = {fam.name: fam for fam in FAMILIES}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"Unknown task families {unknown}; known: {sorted(known)}.")
    return tuple(fam for fam in FAMILIES if fam.name in set(names))


def _check_draft(fam: Family, draft: Draft) -> None:
    """Reject drafts that break the dataset's shape rules (a bug in the family)."""
    if not _MIN_TESTS <= len(draft.tests) <= _MAX_TESTS:
        raise RuntimeError(
            f"Family {fam.name!r} produced {len(draft.tests)} tests; expected "
            f"{_MIN_TESTS}..{_MAX_TESTS}."
        )
    if len(draft.correct) < 2 or len(draft.mutants) < 2:
        raise RuntimeError(
            f"Family {fam.name!r} produced {len(draft.correct)} correct programs and "
            f"{len(draft.mutants)} mutants; expected at least 2 of each."
        )


def _draw_family(fam: Family, seed: int, count: int) -> list[Draft]:
    """Draw up to ``count`` drafts with pairwise different statements from one family.

    Each family gets its own generator seeded from ``(seed, family name)``, so adding or
    changing one family never changes the problems of another, and asking for more
    problems keeps the first ones unchanged. A family has a finite number of distinct
    statements: drawing stops once `_MAX_MISSES` draws in a row brought nothing new, and
    the family contributes what it has (logged), never a duplicate statement.
    """
    rng = random.Random(f"{seed}:{fam.name}")
    drafts: list[Draft] = []
    seen: set[str] = set()
    misses = 0
    while len(drafts) < count and misses < _MAX_MISSES:
        draft = fam.make(rng)
        key = statement_key(draft.description)
        if key in seen:
            misses += 1
            continue
        _check_draft(fam, draft)
        seen.add(key)
        drafts.append(draft)
        misses = 0
    if not drafts:
        raise RuntimeError(f"Family {fam.name!r} produced no problem.")
    if len(drafts) < count:
        logger.info("family %s has %d distinct statements (asked for %d)", fam.name, len(drafts), count)
    return drafts


def generate_problems(
    seed: int = 0, n_per_family: int | None = None, families: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Draw unverified candidate problems from the task families.

    Args:
        seed: Master seed; the same seed always gives the same candidates.
        n_per_family: At most this many problems per family (default
            `DEFAULT_N_PER_FAMILY`); a family with fewer distinct statements gives all it has.
        families: Names of the families to use (default: all, in name order).

    Returns:
        One dict per problem with ``name`` (``<family>_<index>``), ``family``,
        ``difficulty``, ``description``, ``tests`` (``{"input", "output"}``),
        ``correct`` (program texts) and ``mutants`` (``{"kind", "source"}`` dicts).

    Raises:
        ValueError: On an unknown family name or a non-positive ``n_per_family``.
        RuntimeError: If a family produces a malformed draft or no problem at all.
    """
    count = DEFAULT_N_PER_FAMILY if n_per_family is None else n_per_family
    if count < 1:
        raise ValueError(f"n_per_family must be >= 1, got {count}.")
    problems = []
    for fam in _select_families(families):
        for index, draft in enumerate(_draw_family(fam, seed, count)):
            problems.append(
                {
                    "name": f"{fam.name}_{index}",
                    "family": fam.name,
                    "difficulty": fam.difficulty,
                    "description": draft.description,
                    "tests": {
                        "input": [stdin for stdin, _ in draft.tests],
                        "output": [stdout for _, stdout in draft.tests],
                    },
                    "correct": list(draft.correct),
                    "mutants": [{"kind": kind, "source": src} for kind, src in draft.mutants],
                }
            )
    return problems


def _candidates(problem: dict[str, Any]) -> list[tuple[str, str]]:
    """The programs of one problem as ``(origin, source)``; origin is "reference" for an
    intended-correct program and the mutation kind for a mutant."""
    return [("reference", src) for src in problem["correct"]] + [
        (mutant["kind"], mutant["source"]) for mutant in problem["mutants"]
    ]


def _progress(total: int, enabled: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """A thread-safe ``(tick, close)`` pair: a tqdm bar on stderr, or log lines every 10%.

    tqdm is optional here so that the generator runs on a bare Python with only the
    standard library.
    """
    if not enabled:
        return (lambda: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    lock = threading.Lock()
    if tqdm is not None:
        bar = tqdm(total=total, desc="verifying programs", unit="prog")

        def tick() -> None:
            with lock:
                bar.update(1)

        return tick, bar.close
    done = [0]

    def tick_log() -> None:
        with lock:
            done[0] += 1
            if done[0] % max(1, total // 10) == 0 or done[0] == total:
                logger.info("verified %d/%d programs", done[0], total)

    return tick_log, (lambda: None)


def verify_problems(
    problems: Sequence[dict[str, Any]],
    timeout: float = DEFAULT_TIMEOUT_S,
    workers: int = 2,
    progress: bool = True,
) -> list[list[Verdict]]:
    """Run every candidate program of every problem against all of its tests.

    Args:
        problems: Candidates from `generate_problems`.
        timeout: Per-test wall-clock limit, in seconds.
        workers: Sandboxes running at once.
        progress: Show a progress bar (or log lines) on stderr.

    Returns:
        For each problem, one verdict per program in `_candidates` order.
    """
    jobs, owners = [], []
    for index, problem in enumerate(problems):
        tests = list(zip(problem["tests"]["input"], problem["tests"]["output"], strict=True))
        for _, source in _candidates(problem):
            jobs.append(Job(source, tests))
            owners.append(index)
    tick, close = _progress(len(jobs), progress)
    try:
        limits = Limits(time_s=timeout, memory_mb=MEMORY_MB)
        flat = run_many(jobs, workers=workers, limits=limits, on_done=tick)
    finally:
        close()
    grouped: list[list[Verdict]] = [[] for _ in problems]
    for owner, result in zip(owners, flat):
        grouped[owner].append(result)
    return grouped


def assemble_record(problem: dict[str, Any], results: Sequence[Verdict]) -> dict[str, Any]:
    """File a problem's programs by their verified outcome into a CodeContests record.

    Args:
        problem: One candidate from `generate_problems`.
        results: Its verdicts, aligned with `_candidates`.

    Returns:
        The record, keys in sorted order. Extra fields beyond CodeContests: ``family``,
        ``source``, ``incorrect_kinds`` (aligned with ``incorrect_solutions``) and
        ``solution_kinds`` (aligned with ``solutions``: "reference", or the mutation kind
        of a mutant that passed every test).

    Raises:
        RuntimeError: If an intended-correct program fails a test (a generator bug).
    """
    good: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    for (origin, source), result in zip(_candidates(problem), results, strict=True):
        if origin == "reference" and not result.passed:
            raise RuntimeError(
                f"Generator bug in {problem['name']}: a reference solution failed test "
                f"{result.failed_test} ({result.status}: {result.detail}). Fix the family "
                f"{problem['family']!r}. Program:\n{source}"
            )
        (good if result.passed else bad).append((origin, source))
    empty = {"input": [], "output": []}
    record = {
        "name": problem["name"],
        "description": problem["description"],
        "difficulty": problem["difficulty"],
        "family": problem["family"],
        "source": SOURCE,
        "public_tests": {
            "input": list(problem["tests"]["input"]),
            "output": list(problem["tests"]["output"]),
        },
        "private_tests": dict(empty),
        "generated_tests": dict(empty),
        "solutions": _solution_block(good),
        "incorrect_solutions": _solution_block(bad),
        "solution_kinds": [origin for origin, _ in good],
        "incorrect_kinds": [origin for origin, _ in bad],
    }
    return dict(sorted(record.items()))


def _solution_block(programs: Sequence[tuple[str, str]]) -> dict[str, list]:
    """CodeContests ``{"language", "solution"}`` block for ``(origin, source)`` pairs."""
    return {"language": [PYTHON3] * len(programs), "solution": [src for _, src in programs]}


SUMMARY_KEYS = ("problems", "correct", "incorrect", "passing_mutants", "well_covered")


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per-family counts of problems and of correct / incorrect solutions, plus a total.

    Args:
        records: Dataset records (as written by `build_dataset`).

    Returns:
        ``{family: {"problems", "correct", "incorrect", "passing_mutants",
        "well_covered"}}`` with an extra ``"TOTAL"`` row; ``well_covered`` counts problems
        with at least two solutions of each class.
    """
    rows: dict[str, dict[str, int]] = {}
    for record in records:
        for key in (record["family"], "TOTAL"):
            row = rows.setdefault(key, dict.fromkeys(SUMMARY_KEYS, 0))
            n_good = len(record["solutions"]["solution"])
            n_bad = len(record["incorrect_solutions"]["solution"])
            row["problems"] += 1
            row["correct"] += n_good
            row["incorrect"] += n_bad
            row["passing_mutants"] += sum(kind != "reference" for kind in record["solution_kinds"])
            row["well_covered"] += n_good >= 2 and n_bad >= 2
    return dict(sorted(rows.items(), key=lambda item: (item[0] == "TOTAL", item[0])))


def build_dataset(
    seed: int = 0,
    out_path: str | Path | None = DEFAULT_OUT_PATH,
    workers: int = 2,
    n_per_family: int | None = None,
    families: Iterable[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Generate candidates, label every program by running it, and write the JSONL file.

    Args:
        seed: Master seed of `generate_problems`.
        out_path: Where to write the JSONL (``None``: do not write).
        workers: Sandboxes running at once.
        n_per_family: At most this many problems per family (default
            `DEFAULT_N_PER_FAMILY`); a family with fewer distinct statements gives all it has.
        families: Family names to include (default: all).
        timeout: Per-test wall-clock limit, in seconds.
        progress: Show progress on stderr.

    Returns:
        The records, in family-name then index order.

    Raises:
        RuntimeError: If a reference solution fails its tests (see `assemble_record`).
    """
    problems = generate_problems(seed, n_per_family, families)
    logger.info("generated %d candidate problems; verifying their programs", len(problems))
    results = verify_problems(problems, timeout=timeout, workers=workers, progress=progress)
    records = [assemble_record(problem, result) for problem, result in zip(problems, results)]
    if out_path is not None:
        write_jsonl(out_path, records)
        logger.info("wrote %d problems to %s", len(records), out_path)
    return records
