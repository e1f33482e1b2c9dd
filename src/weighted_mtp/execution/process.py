"""Run one process with a wall clock and byte caps on its output (see docs/EXECUTION.md).

The parent reads the child's stdout and stderr on its own pipes, at most ``cap`` bytes
each (stderr keeps only a tail), so its memory stays flat whatever the program prints. On
a timeout or an exceeded cap the whole run is killed: for a bwrap sandbox, the init of its
PID namespace (the kernel then kills every process in it, including daemonised ones and
ones that called ``setsid``); in weaker mode, the process group.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

STDERR_TAIL_BYTES = 2000
_CHUNK = 1 << 16
_REAP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RawRun:
    """What the parent observed of one run, before any judgement.

    Attributes:
        returncode: Exit status of the started process (bwrap passes the program's on).
        stdout: Everything read from stdout, at most the cap (+ one chunk) bytes.
        stderr_tail: The last `STDERR_TAIL_BYTES` bytes of stderr.
        timed_out: The wall clock ran out and the run was killed.
        output_exceeded: stdout or stderr passed its cap and the run was killed.
        started: The program itself started (bwrap reported its sandbox); False means
            the sandbox failed before the program ran.
        duration_s: Wall-clock seconds from start to reaping.
    """

    returncode: int
    stdout: bytes
    stderr_tail: bytes
    timed_out: bool
    output_exceeded: bool
    started: bool
    duration_s: float


class _Reader:
    """State of one capped read: the kept bytes, the count, the sandbox's init pid."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.stdout = bytearray()
        self.stderr_tail = b""
        self.stderr_total = 0
        self.info = b""
        self.child_pid: int | None = None

    def feed(self, kind: str, data: bytes) -> bool:
        """Store a chunk; return False once a cap is exceeded."""
        if kind == "stdout":
            self.stdout += data
            return len(self.stdout) <= self.cap
        if kind == "stderr":
            self.stderr_total += len(data)
            self.stderr_tail = (self.stderr_tail + data)[-STDERR_TAIL_BYTES:]
            return self.stderr_total <= self.cap
        self.info += data
        if self.child_pid is None:
            try:  # bwrap's first JSON object; anything after it is ignored
                report, _ = json.JSONDecoder().raw_decode(self.info.decode("utf-8", "replace"))
                self.child_pid = int(report["child-pid"])
            except (ValueError, KeyError, TypeError):
                pass  # the JSON is not complete yet
        return True


def _pump(proc: subprocess.Popen, reader: _Reader, info_fd: int | None, deadline: float) -> str:
    """Read the pipes until they close, the deadline passes or a cap is hit.

    Returns:
        "eof", "timeout" or "output".
    """
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    if info_fd is not None:
        selector.register(info_fd, selectors.EVENT_READ, "info")
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, _CHUNK)
                if not data:
                    selector.unregister(key.fileobj)
                elif not reader.feed(key.data, data):
                    return "output"
        return "eof"
    finally:
        selector.close()


def _kill(proc: subprocess.Popen, reader: _Reader, info_fd: int | None) -> None:
    """Kill the whole run.

    For a sandbox, only the init of its PID namespace is killed: the kernel kills every
    other process of the namespace and waits until they are gone before the init becomes
    a zombie, so bwrap, which waits on the init, exits only then — reaping bwrap afterwards
    proves that nothing of the run is left. Killing bwrap itself would not wait for that
    (the init would die later, from ``--die-with-parent``), so it is the fallback only
    when bwrap never reported an init.
    """
    if info_fd is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    if reader.child_pid is None:
        _read_remaining_info(reader, info_fd)
    if reader.child_pid is not None:
        _kill_child(reader.child_pid, proc.pid)
    else:
        proc.kill()


def _read_remaining_info(reader: _Reader, info_fd: int) -> None:
    """bwrap writes the init's pid right after creating it; wait briefly for it."""
    selector = selectors.DefaultSelector()
    selector.register(info_fd, selectors.EVENT_READ)
    try:
        while reader.child_pid is None and selector.select(1.0):
            data = os.read(info_fd, _CHUNK)
            if not data:
                return
            reader.feed("info", data)
    finally:
        selector.close()


def _kill_child(pid: int, parent: int) -> None:
    """SIGKILL ``pid`` through a pidfd, only if it is a child of ``parent`` (bwrap).

    The sandbox's init is bwrap's child and stays unreaped while bwrap lives, so its pid
    cannot have been reused; the parent check is defence in depth against a wrong report.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if _parent_of(pid) == parent:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[1])  # fields after "(comm)": state, ppid


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the started process; a bwrap that does not exit after its init died is
    killed too (it has nothing left to supervise)."""
    try:
        proc.wait(timeout=_REAP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_capped(
    argv: list[str],
    *,
    stdin_fd: int,
    time_s: float,
    cap: int,
    info_fd: int | None,
    popen_kwargs: dict,
    close_after_start: tuple[int, ...] = (),
) -> RawRun:
    """Start ``argv``, enforce the wall clock and the output caps, reap everything.

    Args:
        argv: The command (a bwrap sandbox, or the weaker-mode prlimit command).
        stdin_fd: Readable fd given to the program as stdin.
        time_s: Wall-clock budget.
        cap: Byte cap on stdout and, separately, on stderr.
        info_fd: Read end of bwrap's ``--info-fd`` pipe; None in weaker mode.
        popen_kwargs: Extra `subprocess.Popen` arguments (env, fds to pass, cwd, session).
        close_after_start: Fds passed to the child that the parent closes once it is
            started (always closed, even if the start fails), e.g. the write end of the
            info pipe, whose EOF then means bwrap is gone.

    Returns:
        What was observed. When this returns, every process of the run has exited.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen_kwargs
        )
    finally:
        for fd in close_after_start:
            os.close(fd)
    reader = _Reader(cap)
    ending = "eof"
    try:
        ending = _pump(proc, reader, info_fd, start + time_s)
        if ending == "eof":
            try:
                proc.wait(timeout=max(0.0, start + time_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                ending = "timeout"
    finally:
        if ending != "eof" or proc.poll() is None or info_fd is None:
            _kill(proc, reader, info_fd)  # weaker mode: always clear the process group
        _reap(proc)
        proc.stdout.close()
        proc.stderr.close()
    if info_fd is not None and reader.child_pid is None:
        _read_remaining_info(reader, info_fd)
    return RawRun(
        returncode=proc.returncode,
        stdout=bytes(reader.stdout),
        stderr_tail=reader.stderr_tail,
        timed_out=ending == "timeout",
        output_exceeded=ending == "output",
        started=info_fd is None or reader.child_pid is not None,
        duration_s=time.monotonic() - start,
    )
