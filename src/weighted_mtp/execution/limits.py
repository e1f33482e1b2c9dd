"""The resource limits of one sandboxed run, as data (see docs/EXECUTION.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one program may use while it runs against one test.

    Every limit holds per test: the program is started afresh for each test. The
    wall clock and the output caps are enforced by the parent; the rest are rlimits set
    inside the sandbox right before the interpreter starts (docs/EXECUTION.md lists
    which mechanism enforces which limit).

    Attributes:
        time_s: Wall-clock seconds for one test, interpreter start-up included. The CPU
            rlimit is derived from it (``cpu_seconds``).
        memory_mb: Address-space limit (RLIMIT_AS) in MiB; Python raises MemoryError
            beyond it.
        output_bytes: Cap on stdout and, separately, on stderr; a program that writes
            more is stopped and judged ``output_limit``.
        processes: Processes and threads the program may have at once (RLIMIT_NPROC,
            counted inside the sandbox's own user namespace).
        file_size_mb: Largest file the program may write (RLIMIT_FSIZE), in MiB.
        open_files: Open file descriptors (RLIMIT_NOFILE).
        scratch_mb: Size of the program's private working directory (a tmpfs), in MiB.
    """

    time_s: float = 2.0
    memory_mb: int = 512
    output_bytes: int = 1_000_000
    processes: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    scratch_mb: int = 64

    def __post_init__(self) -> None:
        """Reject limits that cannot be enforced, naming the field and the value."""
        if not (isinstance(self.time_s, (int, float)) and 0 < self.time_s <= 3600):
            raise ValueError(f"Limits.time_s must be in (0, 3600] seconds, got {self.time_s!r}.")
        for name in ("memory_mb", "output_bytes", "processes", "file_size_mb", "open_files",
                     "scratch_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}.")
        if self.memory_mb < 32:
            raise ValueError(
                f"Limits.memory_mb={self.memory_mb} is too small for a Python interpreter "
                "to start; use at least 32."
            )
        if self.open_files < 8:
            raise ValueError(f"Limits.open_files must be at least 8, got {self.open_files}.")

    @property
    def cpu_seconds(self) -> int:
        """Soft CPU-time rlimit: the wall budget rounded up, so CPU never binds first on
        a quiet machine; the hard limit is one second above it (SIGXCPU, then SIGKILL)."""
        return max(1, math.ceil(self.time_s))
