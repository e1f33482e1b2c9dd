"""Helpers of the tracking tests: a real MLflow server with basic auth, the tiny run
configuration and in-process Kedro sessions (a uniquely named module, so importing it
cannot pick up another directory's ``conftest``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "tracking-tests-Passw0rd"
SERVER_START_TIMEOUT_S = 120


@dataclass
class MlflowServer:
    """A running ``mlflow server --app-name basic-auth`` on 127.0.0.1."""

    uri: str
    process: subprocess.Popen
    log_path: Path
    artifacts: Path

    def wait_ready(self) -> None:
        """Block until ``/health`` answers, or fail with the server log."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mlflow server at {self.uri} did not start (exit {self.process.poll()}):\n{tail}")

    def stop(self) -> None:
        """Stop the server and its uvicorn child (one process group)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path) -> MlflowServer:
    """Start a basic-auth server with its stores in ``folder`` (returns before it is ready)."""
    port = free_port()
    auth_ini = folder / "basic_auth.ini"
    auth_ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'auth.db'}\n"
        f"admin_username = {ADMIN_USER}\n"
        f"admin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n",  # PBKDF2 on every request is slow on 2 CPUs
        encoding="utf-8",
    )
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "tracking-tests",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner / huey workers
    env.pop("MLFLOW_TRACKING_URI", None)
    artifacts = folder / "artifacts"
    log_path = folder / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(artifacts), "--workers", "1"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=folder, start_new_session=True)
    return MlflowServer(f"http://127.0.0.1:{port}", process, log_path, artifacts)


# A few steps of every stage on a small slice of the embedded data.
TINY_PARAMS: dict[str, Any] = {
    "models": {"policy": {"micro": {"dim": 32, "n_layers": 5, "n_heads": 2, "n_kv_heads": 1,
                                    "max_seq_len": 192}}},
    "dataset": {"max_length": 192, "tokenizer_vocab_size": 1024, "max_solutions_per_problem": 1,
                "validation_fraction": 0.05},
    "training": {
        "log_interval": 1, "eval_interval": 2, "patience": 100,
        "pretrain": {"n_epochs": 0.04, "batch_size": 4},
        "stage1": {"n_epochs": 0.04, "batch_size": 4},
        "stage2": {"n_epochs": 0.08, "batch_size": 4},
    },
    "evaluation": {"n_samples": 2, "k": [1, 2], "max_new_tokens": 48, "max_problems": 8, "train_sample": 3},
}


def run_session(project: Path, params: dict[str, Any] | None = None, pipelines: list[str] | None = None,
                env: str | None = None) -> None:
    """``kedro run`` in-process on ``project`` (its own data under ``project/data``)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env, runtime_params=params) as session:
        session.run(pipeline_names=pipelines)


def copy_project(template: Path, destination: Path) -> Path:
    """A fresh project folder for one run (its own data, mlflow.db, mlruns)."""
    shutil.copytree(template, destination)
    return destination
