"""The fail-fast check of the tracking store: one line naming the store and what to do.

Read-only stores are real files and folders (the ``read_only`` fixture of conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from tracking_helpers import free_port

from weighted_mtp.tracking.server import check_tracking_store, sqlite_store_problem

WHAT_TO_DO = ("make it writable, set MLFLOW_TRACKING_URI to another store, or run with --params "
              "mlflow.enabled=false.")


def _store(folder: Path) -> str:
    """A real MLflow sqlite store (tables created) in ``folder``."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def test_a_writable_store_passes(tmp_path):
    check_tracking_store(_store(tmp_path))
    check_tracking_store(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'mlflow.db'}")  # MLflow creates it
    check_tracking_store("sqlite:///:memory:")


def test_a_read_only_database_file_is_one_line_before_mlflow_fails(tmp_path, read_only):
    uri = _store(tmp_path)
    read_only(tmp_path / "mlflow.db")
    with pytest.raises(RuntimeError) as error:
        check_tracking_store(uri)
    assert str(error.value) == (f"MLflow store {uri} is read-only ({tmp_path / 'mlflow.db'} is not writable): "
                                + WHAT_TO_DO)
    with pytest.raises(MlflowException):  # what a run met without the check: SQLAlchemy's error
        MlflowClient(uri).create_experiment("x")


def test_a_read_only_folder_is_named_since_sqlite_writes_its_journal_there(tmp_path, read_only):
    folder = tmp_path / "store"
    folder.mkdir()
    uri = _store(folder)
    read_only(folder)
    assert sqlite_store_problem(uri) == f"its folder {folder} is not writable, and SQLite writes its journal there"
    with pytest.raises(RuntimeError, match=r"^MLflow store .* is read-only \(its folder"):
        check_tracking_store(uri)
    with pytest.raises(MlflowException):
        MlflowClient(uri).create_experiment("x")


def test_a_missing_database_under_a_read_only_folder(tmp_path, read_only):
    read_only(tmp_path)
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert sqlite_store_problem(uri) == (f"{tmp_path / 'runs' / 'mlflow.db'} does not exist and {tmp_path} "
                                         "is not writable to create it")


def test_an_unreachable_server_is_one_line_naming_the_uri(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RuntimeError) as error:
        check_tracking_store(uri, timeout_s=5)
    message = str(error.value)
    assert message == (f"MLflow tracking server {uri} is unreachable ([Errno 111] Connection refused). Start the "
                       "server or fix MLFLOW_TRACKING_URI (or server.mlflow_tracking_uri in mlflow.yml); to train "
                       "without tracking pass --params mlflow.enabled=false.")
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no retry traceback under it
