"""Fixtures of the tracking tests: the MLflow server, a project copy, fresh projects.

The server takes ~20 s to start on two CPUs, so it is started once per test session, as
soon as the first test of this folder runs (the tests that need no server run while it
boots), and its whole process group is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tracking_helpers import PROJECT_ROOT, MlflowServer, copy_project, start_server


_NEEDS_SERVER = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items) -> None:
    """Remember whether any selected test uses the server (``-m "not slow"`` selects none)."""
    config.stash[_NEEDS_SERVER] = any("mlflow_server" in item.fixturenames for item in items)


@pytest.fixture(scope="session", autouse=True)
def _booting_server(request, tmp_path_factory) -> Iterator[MlflowServer | None]:
    """Start the server when this folder's first test runs, if a selected test needs it;
    stop it at the very end."""
    if not request.config.stash.get(_NEEDS_SERVER, True):
        yield None
        return
    server = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(_booting_server: MlflowServer | None) -> MlflowServer:
    """The basic-auth server, ready."""
    assert _booting_server is not None, "pytest_collection_modifyitems saw no test needing the server"
    _booting_server.wait_ready()
    return _booting_server


@pytest.fixture(scope="session")
def project_template(tmp_path_factory) -> Path:
    """A copy of the project's conf (no conf/local), pyproject and raw data.

    Other engineers edit conf/ while the tests run; the copy freezes it for this session.
    ``src/`` is empty: the package is installed (editable), Kedro only checks it exists.
    """
    root = tmp_path_factory.mktemp("project")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()
    raw = root / "data" / "01_raw"
    raw.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "01_raw" / "code_problems.jsonl", raw)
    return root


@pytest.fixture
def make_project(project_template, tmp_path, monkeypatch):
    """``make_project("name")`` → a fresh project copy whose data paths point inside it
    (``WMTP_DATA_ROOT``), with no MLflow credentials in the environment."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_EXPERIMENT_NAME",
                 "MLFLOW_RUN_ID", "WMTP_MLFLOW_RUN_NAME", "WMTP_MLFLOW_USERNAME", "WMTP_MLFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WMTP_PROGRESS", "0")

    def make(name: str) -> Path:
        project = copy_project(project_template, tmp_path / name)
        monkeypatch.setenv("WMTP_DATA_ROOT", str(project / "data"))
        return project

    return make


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """``read_only(path)`` makes a file or folder unwritable for this process (undone after).

    chmod, and — when the tests run as root, whom chmod does not stop — ``chattr +i``
    (immutable), which stops root too; where that is unavailable the test is skipped.
    """
    undo: list[Callable[[], None]] = []

    def make(path: Path) -> None:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o555 if path.is_dir() else 0o444)
        undo.append(lambda: path.chmod(mode))
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                                capture_output=True).returncode != 0:
                pytest.skip("running as root, where chmod does not stop writes, and chattr +i "
                            f"(immutable) is not available for {path}")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        assert not os.access(path, os.W_OK)

    yield make
    for step in reversed(undo):
        step()
