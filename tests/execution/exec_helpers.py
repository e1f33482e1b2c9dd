"""Host-side checks of the sandbox tests: that a run left nothing behind."""

from __future__ import annotations

import os
from pathlib import Path


def host_processes_with(token: str) -> list[int]:
    """Host pids whose command line contains ``token`` (a unique marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited while we looked
        if token.encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found
