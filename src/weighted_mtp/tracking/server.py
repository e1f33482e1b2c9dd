"""Where runs are recorded, and a fail-fast check of the tracking store.

A run against an unreachable server or with a wrong password must stop before any
training, with one message naming the URI and the HTTP status: MLflow's own client would
retry for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7 with back-off) and then
fail inside the first node with a long traceback. A local sqlite store that cannot be
written gets one line too, instead of SQLAlchemy's ``attempt to write a readonly database``
or ``disk I/O error``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHECK_TIMEOUT_ENV = "WMTP_MLFLOW_CHECK_TIMEOUT"
_SEARCH_ENDPOINT = "/api/2.0/mlflow/experiments/search"
_SQLITE = "sqlite:///"


def resolve_tracking_uri(
    configured: str | None, project_path: str | Path, env: Mapping[str, str] | None = None
) -> str:
    """The tracking URI a run uses, with a relative sqlite path anchored at the project.

    Args:
        configured: ``server.mlflow_tracking_uri`` from mlflow.yml (already resolved, so
            ``MLFLOW_TRACKING_URI`` has had its say there), or None.
        project_path: The Kedro project root.
        env: Environment variables (``os.environ`` by default).

    Returns:
        ``configured``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``; a
        relative sqlite file is made absolute under ``project_path`` so a session created
        from another working directory (tests, notebooks) finds the same store.
    """
    env = os.environ if env is None else env
    uri = configured or env.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return anchor_sqlite_uri(uri, Path(project_path))


def anchor_sqlite_uri(uri: str, root: Path) -> str:
    """``sqlite:///mlflow.db`` → ``sqlite:////<root>/mlflow.db``; other URIs unchanged."""
    if not uri.startswith(_SQLITE):
        return uri
    path = uri[len(_SQLITE):]
    if path == ":memory:" or Path(path).is_absolute():
        return uri
    return f"{_SQLITE}{(root / path).resolve()}"


def local_artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a new experiment in a local sqlite store: ``<db folder>/mlruns/<name>``.

    MLflow's default is ``./mlruns`` in whatever directory the process runs from; next to
    the database the store stays one movable folder. None for other stores (a server
    decides its own artifact root, e.g. ``--artifacts-destination s3://...``).
    """
    if not uri.startswith(_SQLITE) or uri.endswith(":memory:"):
        return None
    database = Path(uri[len(_SQLITE):])
    slug = re.sub(r"[^\w.\-/]", "_", experiment_name).strip("/") or "default"
    return (database.parent / "mlruns" / slug).as_uri()


def is_http_uri(uri: str) -> bool:
    """A tracking server (as opposed to a local database or folder)."""
    return uri.startswith(("http://", "https://"))


def check_tracking_store(uri: str, timeout_s: float | None = None) -> None:
    """Fail fast when the tracking store cannot record a run.

    A server (``http(s)://``) gets one authenticated ``experiments/search`` request
    (``max_results=1``) without retries, with the credentials MLflow itself would use
    (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
    TLS settings). A sqlite store must be writable (:func:`sqlite_store_problem`). Other
    stores are not checked.

    Args:
        uri: The tracking URI.
        timeout_s: Connect and read timeout; default ``$WMTP_MLFLOW_CHECK_TIMEOUT`` or 10 s.

    Raises:
        RuntimeError: One line naming the URI, the connection error, HTTP status or
            unwritable path, and what to change; the password is never shown.
    """
    if uri.startswith(_SQLITE):
        if problem := sqlite_store_problem(uri):
            raise RuntimeError(f"MLflow store {uri} is read-only ({problem}): make it writable, set "
                               "MLFLOW_TRACKING_URI to another store, or run with --params mlflow.enabled=false.")
        return
    if is_http_uri(uri):
        _check_server(uri, timeout_s)


def sqlite_store_problem(uri: str) -> str | None:
    """Why MLflow could not write the sqlite store ``uri``, or None when it can.

    SQLite writes a journal next to the database, and MLflow creates a missing database
    and its folders; so the file (when it exists) and its folder must be writable, or the
    nearest existing folder above a missing one. ``os.access`` answers for this process
    (root may write a mode-0444 file; no one may write an immutable or read-only-mounted one).
    """
    database = Path(uri[len(_SQLITE):].partition("?")[0])
    if str(database) == ":memory:":
        return None
    if database.exists():
        if not os.access(database, os.W_OK):
            return f"{database} is not writable"
        if not os.access(database.parent, os.W_OK | os.X_OK):
            return f"its folder {database.parent} is not writable, and SQLite writes its journal there"
        return None
    folder = next(parent for parent in database.parents if parent.exists())
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{database} does not exist and {folder} is not writable to create it"
    return None


def _check_server(uri: str, timeout_s: float | None) -> None:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    timeout = timeout_s if timeout_s is not None else float(os.environ.get(CHECK_TIMEOUT_ENV, "10"))
    creds = get_default_host_creds(uri)
    try:
        response = http_request(creds, _SEARCH_ENDPOINT, "GET", max_retries=0, backoff_factor=0,
                                timeout=timeout, raise_on_status=False, params={"max_results": 1})
    except Exception as exc:  # requests/urllib3/MlflowException: all mean "not reachable"
        raise RuntimeError(
            f"MLflow tracking server {uri} is unreachable ({_first_line(exc)}). Start the "
            "server or fix MLFLOW_TRACKING_URI (or server.mlflow_tracking_uri in mlflow.yml); "
            "to train without tracking pass --params mlflow.enabled=false."
        ) from None
    _raise_for_status(uri, response.status_code, response.text, creds.username)


def _raise_for_status(uri: str, status: int, body: str, username: str | None) -> None:
    if status == 200:
        return
    if status in (401, 403):
        who = f"user {username!r}" if username else "no credentials"
        raise RuntimeError(
            f"MLflow tracking server {uri} refused the request: HTTP {status} "
            f"({'not authenticated' if status == 401 else 'permission denied'}, {who}). Set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or WMTP_MLFLOW_USERNAME and "
            "WMTP_MLFLOW_PASSWORD (read through conf/base/credentials.yml in every env; "
            'docs/MLFLOW.md, "Credentials").'
        )
    raise RuntimeError(
        f"MLflow tracking server {uri} answered HTTP {status} to {_SEARCH_ENDPOINT}: "
        f"{body.strip()[:200]!r}. Is the URI an MLflow server (mlflow server >= 2)?"
    )


_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")\]]*")


def _first_line(exc: BaseException) -> str:
    """The cause worth reading (``[Errno 111] Connection refused``), not urllib3's retry
    wrapper; else the first line of the error, shortened."""
    text = str(exc)
    errno = _ERRNO.search(text)
    if errno:
        return errno.group(0).strip()
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
