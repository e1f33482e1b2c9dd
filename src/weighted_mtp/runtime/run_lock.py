"""One run at a time per experiment folder: an OS file lock held for the whole run.

Two runs writing the same experiment's checkpoints and exported model would mix their files
(run A exporting run B's best weights as its own). ``fcntl.flock`` is released by the kernel
when the holder dies, even by ``kill -9``, so a crashed run never leaves a stale lock; the
lock file records who holds it, so the second run can say which process to wait for.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, IO

LOCK_FILE = ".run.lock"


class RunLockedError(RuntimeError):
    """Another live run holds the experiment folder."""


class RunLock:
    """``with RunLock(folder, run_id): ...`` or :meth:`acquire` / :meth:`release`."""

    def __init__(self, folder: str | Path, run_id: str) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.run_id = run_id
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`RunLockedError` naming the holder.

        Raises:
            RunLockedError: Another process holds it (its pid, start time, host and command).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise RunLockedError(_locked_message(self.path, holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                 "command": " ".join(sys.argv)}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Let the next run in (closing the file drops the lock)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}


def _locked_message(path: Path, holder: dict[str, Any]) -> str:
    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')} "
           f"(run {holder.get('run_id', '?')}: {holder.get('command', '?')})")
    return (f"{path.parent}: another run is using this experiment folder: {who}. Wait for it to end, "
            "or give this run its own experiment (WMTP_EXPERIMENT=<name> kedro run ...).")
