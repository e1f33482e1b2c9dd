"""Run completions against their problem's tests in the sandbox and record the outcome.

Every program goes through :mod:`weighted_mtp.execution` (the project's only door for
untrusted code); this module only pairs completions with tests and keeps the verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from weighted_mtp.evaluation.extract import extract_program
from weighted_mtp.evaluation.problems import problem_family, problem_tests
from weighted_mtp.execution import Limits, run_many

NO_PROGRAM = "no_program"
PROMPT_TOO_LONG = "prompt_too_long"
GREEDY = -1


@dataclass(frozen=True)
class Completion:
    """One generated answer to one problem.

    Attributes:
        problem: Problem name.
        sample: Sample index, or ``GREEDY`` (-1) for the temperature-0 completion.
        text: The generated text.
        status: Set when nothing was generated (``prompt_too_long``); the completion then
            fails without running.
    """

    problem: str
    sample: int
    text: str
    status: str | None = None


def score_completions(completions: Sequence[Completion], problems: Mapping[str, Mapping[str, Any]],
                      limits: Limits, workers: int, allow_weaker_isolation: bool = False,
                      on_done: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Execute every completion's program against all of its problem's tests.

    Args:
        completions: What the model wrote.
        problems: Problem name → raw problem (CodeContests fields).
        limits: Time, memory and output limits of one program run.
        workers: Sandboxed programs running at once.
        allow_weaker_isolation: Passed to the sandbox (see docs/EXECUTION.md).
        on_done: Called once per executed program (progress bar).

    Returns:
        One row per completion, in input order: ``problem``, ``family``, ``sample``,
        ``completion``, ``status`` (a sandbox verdict, ``"no_program"`` or the completion's
        own status) and ``passed``.

    Raises:
        KeyError: If a completion names a problem that is not in ``problems``.
    """
    programs = [None if c.status else extract_program(c.text) for c in completions]
    runnable = [i for i, program in enumerate(programs) if program is not None]
    jobs = [(programs[i], problem_tests(problems[completions[i].problem])) for i in runnable]
    verdicts = run_many(jobs, workers=workers, limits=limits,
                        allow_weaker_isolation=allow_weaker_isolation, on_done=on_done) if jobs else []
    status = {i: (str(v.status), bool(v.passed)) for i, v in zip(runnable, verdicts)}
    rows = []
    for index, completion in enumerate(completions):
        verdict, passed = status.get(index, (completion.status or NO_PROGRAM, False))
        rows.append({
            "problem": completion.problem,
            "family": problem_family(problems[completion.problem]),
            "sample": completion.sample,
            "completion": completion.text,
            "status": verdict,
            "passed": passed,
        })
    return rows
