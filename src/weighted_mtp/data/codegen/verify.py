"""Run candidate programs against stdin/stdout tests in an isolated subprocess.

Every ``is_correct`` label in the embedded dataset comes from here, so the rules are
deliberately simple and documented in ``docs/DATASET.md``:

* One solution runs in one fresh ``python -I`` subprocess (isolated: no user site, no
  ``PYTHON*`` variables, current directory a throw-away temp dir). A tiny harness inside
  that process ``exec``-s the solution once per test with ``sys.stdin``/``sys.stdout``
  redirected to in-memory buffers, so the interpreter starts once per solution instead of
  once per test.
* Each test has its own wall-clock limit (a ``SIGALRM`` watchdog); the subprocess as a
  whole is killed after ``timeout * n_tests`` plus a start-up allowance.
* Outputs are compared after normalisation: trailing whitespace is removed from every line
  and leading/trailing blank lines are dropped. Anything else (case, separators, extra
  tokens, ``12.0`` for ``12``) is a difference.
* A test passes when the program exits normally (or via ``sys.exit(0)``) and its
  normalised output equals the normalised expected output. A solution is correct when it
  passes every test.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Seconds allowed for interpreter start-up and harness overhead on top of the per-test
# budget; generous because the generation machine may be shared and busy.
_STARTUP_ALLOWANCE_S = 10.0

# The harness executed inside the child interpreter. It is kept as source text (rather
# than a module on disk) so that the child needs nothing from this package and ``-I``
# isolation holds; `_harness_source` prepends `normalise_output` so the comparison rule
# lives in one place.
_HARNESS_BODY = r'''
import io, json, signal, sys

OUTPUT_LIMIT = 1_000_000  # characters; a runaway print loop fails instead of eating RAM


class _Timeout(BaseException):
    pass


class _OutputLimit(BaseException):
    pass


class _CappedBuffer(io.StringIO):
    def write(self, text):
        if self.tell() + len(text) > OUTPUT_LIMIT:
            raise _OutputLimit()
        return super().write(text)


def _on_alarm(signum, frame):
    raise _Timeout()


def _run_one(code, stdin_text, timeout):
    buffer = _CappedBuffer()
    sys.stdin, sys.stdout = io.StringIO(stdin_text), buffer
    status = "ok"
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        exec(code, {"__name__": "__main__"})
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status = "exit code %r" % (exc.code,)
    except _Timeout:
        status = "timeout"
    except _OutputLimit:
        status = "output limit exceeded"
    except BaseException as exc:
        status = "%s: %s" % (type(exc).__name__, str(exc)[:200])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdin, sys.stdout = sys.__stdin__, sys.__stdout__
    return status, buffer.getvalue()


def main():
    payload = json.loads(sys.stdin.read())
    result = {"passed": True, "failed_test": None, "reason": ""}
    try:
        import resource
        limit = payload["memory_bytes"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        code = compile(payload["source"], "<solution>", "exec")
    except SyntaxError as exc:
        result.update(passed=False, failed_test=0, reason="SyntaxError: %s" % exc)
        code = None
    tests = zip(payload["inputs"], payload["outputs"]) if code is not None else []
    for index, (stdin_text, expected) in enumerate(tests):
        status, produced = _run_one(code, stdin_text, payload["timeout"])
        if status == "ok" and normalise_output(produced) != normalise_output(expected):
            status = "wrong answer"
        if status != "ok":
            result.update(passed=False, failed_test=index, reason=status)
            break
    sys.__stdout__.write("\n" + json.dumps(result) + "\n")


main()
'''


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of running one program against its tests.

    Attributes:
        passed: True when every test passed.
        failed_test: Index of the first failing test, or None when all passed.
        reason: Why that test failed ("wrong answer", "timeout", an exception name...),
            empty when all passed.
    """

    passed: bool
    failed_test: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class VerifyJob:
    """One program plus the tests it must pass; the unit of work of `verify_many`."""

    source: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def normalise_output(text: str) -> list[str]:
    """Return the lines of ``text`` the way the harness compares them.

    Mirrors the harness so callers (tests, docs) can reason about comparisons without
    starting a subprocess: lines right-stripped, leading/trailing blank lines dropped.

    Args:
        text: Raw program output or expected output.

    Returns:
        The normalised list of lines.
    """
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


@functools.lru_cache(maxsize=1)
def _harness_source() -> str:
    """Return the child program: `normalise_output` followed by the harness body."""
    return textwrap.dedent(inspect.getsource(normalise_output)) + _HARNESS_BODY


def run_solution(
    source: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    timeout: float = 5.0,
    memory_bytes: int = 1 << 30,
) -> VerifyResult:
    """Run ``source`` against every test in one isolated subprocess.

    Args:
        source: Python 3 program that reads stdin and writes stdout.
        inputs: Stdin text of each test.
        outputs: Expected stdout of each test, aligned with ``inputs``.
        timeout: Wall-clock limit per test, in seconds.
        memory_bytes: Address-space limit of the child (RLIMIT_AS), so a runaway
            program cannot take the machine down.

    Returns:
        The verification outcome; a killed or crashed harness counts as a failure.

    Raises:
        ValueError: If ``inputs`` and ``outputs`` differ in length or are empty.
    """
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(
            f"Expected the same non-zero number of test inputs and outputs, "
            f"got {len(inputs)} inputs and {len(outputs)} outputs."
        )
    payload = json.dumps(
        {
            "source": source,
            "inputs": list(inputs),
            "outputs": list(outputs),
            "timeout": float(timeout),
            "memory_bytes": int(memory_bytes),
        }
    )
    budget = timeout * len(inputs) + _STARTUP_ALLOWANCE_S
    with tempfile.TemporaryDirectory(prefix="codegen-verify-") as workdir:
        try:
            completed = subprocess.run(
                [sys.executable, "-I", "-c", _harness_source()],
                input=payload,
                capture_output=True,
                text=True,
                cwd=workdir,
                timeout=budget,
                env={"PATH": os.environ.get("PATH", "")},
            )
        except subprocess.TimeoutExpired:
            return VerifyResult(False, None, f"harness killed after {budget:.0f}s")
    return _parse_harness_output(completed)


def _parse_harness_output(completed: subprocess.CompletedProcess[str]) -> VerifyResult:
    """Turn the harness's last stdout line into a `VerifyResult`.

    The harness writes its verdict as the final JSON line; anything else (a crash of the
    harness itself, e.g. from the memory limit) is a failure with stderr as the reason.
    """
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-1:] or [f"exit {completed.returncode}"]
        return VerifyResult(False, None, f"harness failed: {tail[0][:200]}")
    verdict = json.loads(lines[-1])
    return VerifyResult(bool(verdict["passed"]), verdict["failed_test"], verdict["reason"])


def verify_solution(
    source: str, inputs: list[str], outputs: list[str], timeout: float = 5.0
) -> bool:
    """Return True when ``source`` passes every test; see `run_solution` for the rules.

    Args:
        source: Python 3 program that reads stdin and writes stdout.
        inputs: Stdin text of each test.
        outputs: Expected stdout of each test.
        timeout: Wall-clock limit per test, in seconds.

    Returns:
        Whether all tests pass.
    """
    return run_solution(source, inputs, outputs, timeout).passed


def verify_many(
    jobs: Sequence[VerifyJob],
    timeout: float = 5.0,
    workers: int = 2,
    on_done: Callable[[], None] | None = None,
) -> list[VerifyResult]:
    """Verify many programs in parallel, returning results in the order of ``jobs``.

    Threads are enough for parallelism here: each worker only waits on its subprocess.

    Args:
        jobs: Programs and their tests.
        timeout: Wall-clock limit per test, in seconds.
        workers: Number of subprocesses running at once.
        on_done: Called once per finished job (progress reporting).

    Returns:
        One `VerifyResult` per job, aligned with ``jobs``.
    """

    def _run(job: VerifyJob) -> VerifyResult:
        result = run_solution(job.source, job.inputs, job.outputs, timeout)
        if on_done is not None:
            on_done()
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(_run, jobs))


def verify_batch(
    sources: Sequence[str],
    inputs: list[str],
    outputs: list[str],
    timeout: float = 5.0,
    workers: int = 2,
) -> list[bool]:
    """Verify several programs against the same tests (convenience over `verify_many`).

    Args:
        sources: Python 3 programs.
        inputs: Stdin text of each test.
        outputs: Expected stdout of each test.
        timeout: Wall-clock limit per test, in seconds.
        workers: Number of subprocesses running at once.

    Returns:
        One pass/fail flag per source.
    """
    jobs = [VerifyJob(src, tuple(inputs), tuple(outputs)) for src in sources]
    return [result.passed for result in verify_many(jobs, timeout, workers)]
