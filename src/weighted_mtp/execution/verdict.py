"""The outcome of running a program against its tests (see docs/EXECUTION.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    """Why a run ended; the first test that did not pass decides it.

    A ``str`` enum, so ``verdict.status == "passed"`` reads naturally and the value can be
    written to JSON or MLflow as is.
    """

    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Verdict:
    """What the parent concluded from its own pipes and the exit status of each run.

    Attributes:
        status: The outcome; ``Status.PASSED`` only when every test's stdout matched.
        failed_test: Index of the test that decided a failing status, None when passed.
        tests_run: How many tests were started (runs stop at the first failure).
        detail: A short human-readable reason ("exit code 1", "killed after 2.0 s").
        stderr_tail: The last bytes of the failing run's stderr, decoded leniently.
        durations_s: Wall-clock seconds of each test that was run, in order.
    """

    status: Status
    failed_test: int | None = None
    tests_run: int = 0
    detail: str = ""
    stderr_tail: str = ""
    durations_s: tuple[float, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """True only when every test's stdout matched the expected output."""
        return self.status is Status.PASSED
