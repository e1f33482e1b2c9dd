"""Fixtures of the sandbox tests."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def token() -> str:
    """A marker no other process on the host has: digits, so `sleep` accepts it."""
    return str(900_000_000 + uuid.uuid4().int % 99_999_999)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A world-readable, world-writable host directory (pytest's tmp_path sits under a
    0700 directory, which would stop uid 65534 even without a sandbox)."""
    path = Path(tempfile.mkdtemp(prefix="wmtp-exec-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)
