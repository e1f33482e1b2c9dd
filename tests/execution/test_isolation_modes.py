"""Fail closed: a missing mechanism raises a clear error unless weaker isolation is
explicitly allowed, and then the run is logged loudly (docs/EXECUTION.md)."""

from __future__ import annotations

import logging

import pytest

from weighted_mtp.execution import (
    Limits,
    SandboxUnavailableError,
    build_isolation,
    detect_isolation,
    normalise_output,
)
from weighted_mtp.execution.runner import classify, run_once
from weighted_mtp.execution.verdict import Status


def test_this_machine_has_the_full_sandbox() -> None:
    isolation = detect_isolation()
    assert isolation.full and isolation.bwrap and not isolation.weaknesses


def test_a_missing_bwrap_fails_closed_naming_it() -> None:
    with pytest.raises(SandboxUnavailableError, match="bwrap.*not found.*allow_weaker_isolation"):
        build_isolation(None)


def test_a_bwrap_that_cannot_sandbox_fails_closed_with_its_error() -> None:
    with pytest.raises(SandboxUnavailableError, match=r"bwrap failed \(exit 1\)"):
        build_isolation("/bin/false")


def test_weaker_isolation_runs_only_when_asked_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="weighted_mtp.execution"):
        weak = build_isolation(None, allow_weaker_isolation=True)
    assert not weak.full
    assert "WEAKER ISOLATION" in caplog.text and "network" in caplog.text
    raw = run_once(weak, "print(input()[::-1])\n", "abc\n", Limits())
    assert classify(raw, "cba\n", Limits()) == (Status.PASSED, "")


def test_weaker_isolation_still_caps_time_and_output() -> None:
    weak = build_isolation(None, allow_weaker_isolation=True)
    slow = run_once(weak, "import time\ntime.sleep(60)\n", "", Limits(time_s=0.5))
    loud = run_once(weak, "while True:\n    print('x' * 999)\n", "", Limits(output_bytes=10_000))
    assert classify(slow, "", Limits())[0] == Status.TIMEOUT
    assert classify(loud, "", Limits())[0] == Status.OUTPUT_LIMIT


@pytest.mark.parametrize(
    ("field", "value"),
    [("time_s", 0), ("time_s", -1.0), ("memory_mb", 0), ("memory_mb", 8), ("output_bytes", 0),
     ("processes", 0), ("open_files", 3), ("scratch_mb", 1.5), ("memory_mb", True)],
)
def test_limits_reject_unenforceable_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"Limits.{field}"):
        Limits(**{field: value})


def test_cpu_limit_is_the_wall_budget_rounded_up() -> None:
    assert Limits(time_s=0.3).cpu_seconds == 1 and Limits(time_s=2.5).cpu_seconds == 3


def test_normalise_output_follows_the_codecontests_rule() -> None:
    assert normalise_output("\n 1 2  \r\n3\n\n  \n") == [b"", b" 1 2", b"3"]
    assert normalise_output(b"5") == normalise_output("5\n") == [b"5"]
    assert normalise_output("") == []
