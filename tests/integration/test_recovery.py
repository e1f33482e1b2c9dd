"""Nothing lost, nothing overwritten: real `kedro run` processes killed, stopped and run twice.

A scratch project runs data_processing and stage 1 once (in process); each test then starts
stage 2 as a real `kedro run` subprocess (as a user would) and kills it (SIGKILL), stops it
(SIGTERM), or starts a second run beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from project_runs import TINY_PARAMS, make_scratch_project, merge, run_folders, run_project
from weighted_mtp.runtime.run_lock import LOCK_FILE, RunLockedError
from weighted_mtp.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

KEDRO = Path(sys.executable).with_name("kedro")
EXPERIMENT_DIR = Path("data/06_models/checkpoints/default")
# Stage 2 long enough to be caught mid-way: 60 steps, a rolling checkpoint every 3.
LONG_STAGE2 = merge(TINY_PARAMS, {"training": {"save_every_steps": 3, "eval_interval": 1000,
                                               "stage2": {"n_epochs": 6.0}}})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_scratch_project(tmp_path_factory.mktemp("recovery"))
    (project / "conf" / "long").mkdir()
    (project / "conf" / "long" / "parameters.yml").write_text(yaml.safe_dump(LONG_STAGE2))
    run_project(project, extra_params={"mlflow": {"enabled": False}},
                pipeline_names=["data_processing", "stage1"])
    return project


def _start(project: Path, store: Path, *params: str) -> subprocess.Popen:
    """`kedro run --env long --pipelines stage2 --from-nodes train_stage2 [--params ...]`."""
    command = [str(KEDRO), "run", "--env", "long", "--pipelines", "stage2", "--from-nodes", "train_stage2"]
    if params:
        command += ["--params", ",".join(params)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "WMTP_DATA_ROOT": str(project / "data"),
           "WMTP_PROGRESS": "0", "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("WMTP_RUN_ID", None)
    return subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the condition held:\n{process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.1)


def _last_checkpoint(project: Path, process: subprocess.Popen) -> Path | None:
    """The rolling stage-2 checkpoint of the run ``process`` runs (run ids end with its pid)."""
    found = list((project / EXPERIMENT_DIR / "runs").glob(f"*-{process.pid}/checkpoint_stage2_last.pt"))
    return found[0] if found else None


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def _train_losses(checkpoint: Path) -> dict[int, float]:
    return {row["step"]: row["train/loss"] for row in load_checkpoint(checkpoint)["history"] if "train/loss" in row}


def test_kill_9_loses_at_most_the_rolling_interval_and_resume_from_last_equals_an_uninterrupted_run(project,
                                                                                                    tmp_path):
    store = tmp_path / "mlflow.db"
    killed = _start(project, store)
    _wait_for(lambda: _last_checkpoint(project, killed) is not None
              and load_checkpoint(_last_checkpoint(project, killed))["global_step"] >= 6, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    last = _last_checkpoint(project, killed)
    saved_at = load_checkpoint(last)["global_step"]
    assert saved_at >= 6 and saved_at % 3 == 0  # at most 3 steps of work lost
    (last.parent / ".checkpoint_stage2_final.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves

    resumed = _start(project, store, "training.resume_from=last")
    output = _finish(resumed)
    assert f"resuming from {last} at step {saved_at}" in output
    assert not list((project / EXPERIMENT_DIR).rglob("*.tmp"))  # stale temp files cleaned at start
    resumed_final = max((project / EXPERIMENT_DIR / "runs").glob("*/checkpoint_stage2_final.pt"),
                        key=lambda p: p.stat().st_mtime)

    straight = _finish(_start(project, store))
    assert "resuming" not in straight
    straight_final = max((project / EXPERIMENT_DIR / "runs").glob("*/checkpoint_stage2_final.pt"),
                         key=lambda p: p.stat().st_mtime)
    expected, got = _train_losses(straight_final), _train_losses(resumed_final)
    assert sorted(got) == sorted(expected) and len(got) >= 20
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, abs=1e-5), step

    # MLflow: the killed run is not left RUNNING forever; the next run on this machine marks it FAILED
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("weighted-mtp/verifiable").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in runs] == ["FAILED", "FINISHED", "FINISHED"]
    assert "process" in runs[0].data.tags["wmtp.ended_by"]
    assert len(run_folders(project / EXPERIMENT_DIR)) >= 3  # every run kept its own checkpoints


def test_sigterm_ends_the_mlflow_run_killed(project, tmp_path):
    store = tmp_path / "mlflow.db"
    process = _start(project, store)
    _wait_for(lambda: _last_checkpoint(project, process) is not None, process)
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0 and "stopped by SIGTERM" in output
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("weighted-mtp/verifiable").experiment_id])
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["wmtp.stopped_by"]


def test_a_second_run_in_the_same_experiment_fails_at_once_naming_the_first(project, tmp_path):
    first = _start(project, tmp_path / "mlflow.db")
    try:
        _wait_for(lambda: _last_checkpoint(project, first) is not None, first)
        assert json.loads((project / EXPERIMENT_DIR / LOCK_FILE).read_text())["pid"] == first.pid
        folders = run_folders(project / EXPERIMENT_DIR)
        with pytest.raises(RunLockedError, match=rf"another run is using this experiment folder: pid {first.pid} "):
            run_project(project, extra_params={"mlflow": {"enabled": False}}, pipeline_names=["stage2"],
                        from_nodes=["train_stage2"])
        assert run_folders(project / EXPERIMENT_DIR) == folders  # it refused before writing anything
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # the kernel dropped the dead run's lock: the next run goes ahead
    run_project(project, extra_params={"mlflow": {"enabled": False}, "training": {"stage2": {"n_epochs": 0.2}}},
                pipeline_names=["stage2"], from_nodes=["train_stage2"])
