"""The sandbox judges like a judge: embedded solutions pass, their mutants fail, and
runtime errors, timeouts and memory-outs are told apart (docs/EXECUTION.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weighted_mtp.execution import Job, Limits, Status, run_many, run_tests

RAW = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "code_problems.jsonl"
ADD = "a, b = map(int, input().split())\n"
ADD_TESTS = [("2 3\n", "5\n"), ("10 -4\n", "6\n")]


def _all_tests(record: dict) -> list[tuple[str, str]]:
    """Every test of a CodeContests record: public, private and generated."""
    pairs = []
    for field in ("public_tests", "private_tests", "generated_tests"):
        pairs += list(zip(record[field]["input"], record[field]["output"], strict=True))
    return pairs


@pytest.fixture(scope="module")
def sample_records() -> list[dict]:
    """The first problem of each of six families of the embedded file."""
    records = [json.loads(line) for line in RAW.read_text().splitlines()]
    firsts: dict[str, dict] = {}
    for record in records:
        firsts.setdefault(record["family"], record)
    return list(firsts.values())[:6]


def test_embedded_solutions_pass_and_their_mutants_fail(sample_records: list[dict]) -> None:
    jobs, labels = [], []
    for record in sample_records:
        tests = _all_tests(record)
        for field, label in (("solutions", True), ("incorrect_solutions", False)):
            for source in record[field]["solution"]:
                jobs.append(Job(source, tests))
                labels.append((record["name"], label))
    done: list[int] = []
    verdicts = run_many(jobs, workers=2, limits=Limits(time_s=5.0), on_done=lambda: done.append(1))
    assert len(done) == len(jobs)
    assert [(name, v.passed) for (name, _), v in zip(labels, verdicts)] == labels
    assert all(v.status is not Status.SANDBOX_ERROR for v in verdicts)


def test_run_many_keeps_the_order_of_jobs() -> None:
    jobs = [(ADD + f"print(a + b + {k})\n", [("1 1\n", f"{2 + k}\n")]) for k in range(6)]
    jobs[3] = (ADD + "print(0)\n", jobs[3][1])
    verdicts = run_many(jobs, workers=3)
    assert [v.passed for v in verdicts] == [True, True, True, False, True, True]


def test_comparison_ignores_trailing_whitespace_and_blank_lines_only() -> None:
    assert run_tests(ADD + "print(a + b, '')\nprint()\nprint('  ')\n", ADD_TESTS).passed
    assert run_tests(ADD + "print(a + b, end='\\r\\n')\n", ADD_TESTS).passed
    assert run_tests(ADD + "print('', a + b)\n", ADD_TESTS).status == Status.WRONG_ANSWER
    assert run_tests(ADD + "print()\nprint(a + b)\n", ADD_TESTS).status == Status.WRONG_ANSWER
    assert run_tests(ADD + "print(float(a + b))\n", ADD_TESTS).status == Status.WRONG_ANSWER


def test_the_first_failing_test_decides_and_later_tests_are_not_run() -> None:
    verdict = run_tests(ADD + "print(a + b if a < 5 else 0)\n", ADD_TESTS + [("1 1\n", "2\n")])
    assert (verdict.status, verdict.failed_test, verdict.tests_run) == (Status.WRONG_ANSWER, 1, 2)
    assert len(verdict.durations_s) == 2


def test_a_passing_verdict_reports_every_test() -> None:
    verdict = run_tests(ADD + "print(a + b)\n", ADD_TESTS)
    assert verdict.passed and verdict.status == "passed" and verdict.failed_test is None
    assert verdict.tests_run == len(verdict.durations_s) == 2


@pytest.mark.parametrize(
    ("program", "status"),
    [
        (ADD + "print([a][b])\n", Status.RUNTIME_ERROR),
        ("import sys\nprint(5)\nsys.exit(3)\n", Status.RUNTIME_ERROR),
        ("def f(n):\n    return f(n + 1)\nf(0)\n", Status.RUNTIME_ERROR),
        ("this is not python\n", Status.RUNTIME_ERROR),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", Status.RUNTIME_ERROR),
        ("x = ' ' * (2 ** 31)\n", Status.MEMORY),
        ("while True:\n    pass\n", Status.TIMEOUT),
    ],
)
def test_failures_are_classified(program: str, status: Status) -> None:
    verdict = run_tests(program, [("2 3\n", "5\n")], Limits(time_s=1.0, memory_mb=256))
    assert verdict.status == status, verdict
    assert verdict.failed_test == 0 and not verdict.passed


def test_a_runtime_error_carries_the_stderr_tail() -> None:
    verdict = run_tests(ADD + "print([a][b])\n", ADD_TESTS)
    assert "IndexError" in verdict.stderr_tail and verdict.detail == "exit code 1"


def test_exit_zero_counts_as_a_normal_exit() -> None:
    assert run_tests("import sys\nprint(5)\nsys.exit(0)\n", [("", "5\n")]).passed


def test_large_inputs_and_unicode_reach_the_program() -> None:
    big = "x" * 3_000_000
    program = "import sys\ndata = sys.stdin.read()\nprint(len(data), 'é' in data)\n"
    assert run_tests(program, [(big + "é", f"{len(big) + 1} True\n")]).passed


def test_run_tests_rejects_an_empty_test_list() -> None:
    with pytest.raises(ValueError, match="at least one"):
        run_tests("print(1)\n", [])


def test_run_many_rejects_zero_workers() -> None:
    with pytest.raises(ValueError, match="workers >= 1"):
        run_many([("print(1)\n", [("", "1\n")])], workers=0)
