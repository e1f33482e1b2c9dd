"""Run a program against ``(stdin, expected_stdout)`` tests in the sandbox and judge it.

This is the only place in the project that runs untrusted code (docs/EXECUTION.md). The
program runs once per test in a fresh sandbox; the verdict comes only from what the parent
reads on its own pipes and from the exit status, so nothing the program prints or does can
forge it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from .compare import outputs_match
from .limits import Limits
from .process import RawRun, run_capped
from .sandbox import Isolation, bwrap_command, detect_isolation, privilege_drop, rlimit_command
from .verdict import Status, Verdict

Test = tuple[str, str]  # (stdin, expected stdout)
# Exit statuses of a program killed by a signal, as bwrap reports them (128 + signal) or
# as Popen does in weaker mode (-signal). The CPU rlimit sends SIGXCPU at the soft limit
# and SIGKILL at the hard one (if SIGXCPU was ignored).
_SIGXCPU = {128 + signal.SIGXCPU, -signal.SIGXCPU}
_SIGKILL = {128 + signal.SIGKILL, -signal.SIGKILL}


class Job(NamedTuple):
    """One program and its tests: the unit of work of `run_many`."""

    source: str
    tests: Sequence[Test]


def _memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding ``data``, positioned at its start."""
    fd = os.memfd_create(name)
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (large test inputs)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _stdin_fd(stdin: str) -> int:
    """A read-only fd on the test input, so the program cannot alter the copy it reads."""
    rw = _memfd("stdin", stdin.encode("utf-8"))
    try:
        return os.open(f"/proc/self/fd/{rw}", os.O_RDONLY)
    finally:
        os.close(rw)


def _run_sandboxed(isolation: Isolation, source: str, stdin_fd: int, limits: Limits) -> RawRun:
    """One run inside bwrap; the source reaches it through a memfd, never a host file."""
    source_fd = _memfd("program", source.encode("utf-8"))
    info_r, info_w = os.pipe()
    try:
        argv = bwrap_command(isolation, limits, source_fd, info_w)
    except BaseException:
        for fd in (source_fd, info_r, info_w):
            os.close(fd)
        raise
    try:  # run_capped closes source_fd and info_w once bwrap holds them
        return run_capped(argv, stdin_fd=stdin_fd, time_s=limits.time_s,
                          cap=limits.output_bytes, info_fd=info_r,
                          popen_kwargs={"env": {}, "pass_fds": (source_fd, info_w)},
                          close_after_start=(source_fd, info_w))
    finally:
        os.close(info_r)


def _run_weak(isolation: Isolation, source: str, stdin_fd: int, limits: Limits) -> RawRun:
    """One run without namespaces (explicitly allowed weaker isolation)."""
    workdir = tempfile.mkdtemp(prefix="wmtp-exec-")
    try:
        program = os.path.join(workdir, "main.py")
        with open(program, "w", encoding="utf-8") as handle:
            handle.write(source)
        if isolation.run_as is not None:
            os.chown(workdir, *isolation.run_as)
        env = {"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        kwargs = {"env": env, "cwd": workdir, "start_new_session": True}
        argv = privilege_drop(isolation) + rlimit_command(isolation, limits, program)
        return run_capped(argv, stdin_fd=stdin_fd, time_s=limits.time_s,
                          cap=limits.output_bytes, info_fd=None, popen_kwargs=kwargs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_once(isolation: Isolation, source: str, stdin: str, limits: Limits) -> RawRun:
    """Run ``source`` once on ``stdin`` under ``isolation``; see `run_tests`."""
    stdin_fd = _stdin_fd(stdin)
    try:
        run = _run_sandboxed if isolation.bwrap is not None else _run_weak
        return run(isolation, source, stdin_fd, limits)
    finally:
        os.close(stdin_fd)


def classify(raw: RawRun, expected: str, limits: Limits) -> tuple[Status, str]:
    """Judge one run: ``(status, detail)``. The order matters: the parent's own
    observations (sandbox start, caps, clock) come before the exit status. A SIGKILL
    counts as the CPU limit only when the run lasted that long (else it killed itself)."""
    if not raw.started:
        return Status.SANDBOX_ERROR, f"sandbox did not start (exit {raw.returncode})"
    if raw.output_exceeded:
        return Status.OUTPUT_LIMIT, "output cap exceeded"
    if raw.timed_out:
        return Status.TIMEOUT, f"killed after {raw.duration_s:.1f} s (wall clock)"
    cpu_killed = raw.returncode in _SIGKILL and raw.duration_s >= limits.cpu_seconds
    if raw.returncode in _SIGXCPU or cpu_killed:
        return Status.TIMEOUT, f"CPU time limit (exit {raw.returncode})"
    if raw.returncode != 0:
        if b"MemoryError" in raw.stderr_tail:
            return Status.MEMORY, "MemoryError (address-space limit)"
        return Status.RUNTIME_ERROR, f"exit code {raw.returncode}"
    if not outputs_match(raw.stdout, expected):
        return Status.WRONG_ANSWER, "stdout differs from the expected output"
    return Status.PASSED, ""


def run_tests(
    source: str,
    tests: Sequence[Test],
    limits: Limits | None = None,
    *,
    allow_weaker_isolation: bool = False,
) -> Verdict:
    """Run a Python program once per test in a fresh sandbox and judge its outputs.

    Tests run in order and stop at the first that does not pass.

    Args:
        source: The program (Python 3, reads stdin, writes stdout).
        tests: ``(stdin, expected_stdout)`` pairs (CodeContests style).
        limits: Per-test limits (default `Limits()`).
        allow_weaker_isolation: Run without namespaces if bwrap cannot work, with a loud
            warning (config key ``execution.allow_weaker_isolation``).

    Returns:
        The verdict; ``verdict.passed`` only when every test's stdout matched.

    Raises:
        ValueError: If ``tests`` is empty.
        SandboxUnavailableError: If the sandbox cannot work here and weaker isolation
            was not allowed.
    """
    if not tests:
        raise ValueError("run_tests needs at least one (stdin, expected_stdout) test, got none.")
    limits = limits or Limits()
    isolation = detect_isolation(allow_weaker_isolation)
    durations: list[float] = []
    for index, (stdin, expected) in enumerate(tests):
        raw = run_once(isolation, source, stdin, limits)
        durations.append(round(raw.duration_s, 4))
        status, detail = classify(raw, expected, limits)
        if status is not Status.PASSED:
            tail = raw.stderr_tail.decode("utf-8", errors="replace")
            return Verdict(status, index, index + 1, detail, tail, tuple(durations))
    return Verdict(Status.PASSED, None, len(tests), "", "", tuple(durations))


def run_many(
    jobs: Sequence[Job | tuple[str, Sequence[Test]]],
    workers: int = 4,
    limits: Limits | None = None,
    *,
    on_done: Callable[[], None] | None = None,
    allow_weaker_isolation: bool = False,
) -> list[Verdict]:
    """Judge many ``(source, tests)`` jobs with at most ``workers`` running at once.

    Threads suffice: each only waits on its sandbox. The sandbox is probed once before
    any job starts, so a missing mechanism fails fast.

    Args:
        jobs: Programs and their tests.
        workers: Jobs running at once (each runs its tests one after another).
        limits: Per-test limits shared by all jobs (default `Limits()`).
        on_done: Called once per finished job, from a worker thread (progress bars).
        allow_weaker_isolation: See `run_tests`.

    Returns:
        One verdict per job, in the order of ``jobs``.
    """
    if workers < 1:
        raise ValueError(f"run_many needs workers >= 1, got {workers}.")
    detect_isolation(allow_weaker_isolation)

    def _one(job: Job | tuple[str, Sequence[Test]]) -> Verdict:
        source, tests = job
        verdict = run_tests(source, tests, limits, allow_weaker_isolation=allow_weaker_isolation)
        if on_done is not None:
            on_done()
        return verdict

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_one, jobs))
