"""The MLflow backend of the metrics logger, against a fake client: it must never make a
training step wait, must deliver every figure with its step, and must report failures
without raising."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from weighted_mtp.tracking.backend import MlflowBackend
from weighted_mtp.tracking.plots import save_stage_plots
from weighted_mtp.training.metrics_logger import HistoryBackend, MetricsLogger


class SlowClient:
    """Records ``log_batch`` calls; each takes ``delay`` seconds, like a remote server."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.batches: list[dict] = []
        self.artifacts: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("server went away")
        with self.lock:
            self.batches.append({"run_id": run_id, "metrics": list(metrics), "params": list(params)})

    def log_artifacts(self, run_id, folder, artifact_path):
        self.artifacts.append((artifact_path, sorted(p.name for p in Path(folder).iterdir())))

    def metrics(self):
        return [m for batch in self.batches for m in batch["metrics"]]


def _row(step: int) -> dict[str, float]:
    return {"stage2/train/loss": 1.0 / step, "stage2/train/head0_loss": 2.0 / step,
            "stage2/lr": 1e-5, "stage2/tokens_per_s": 100.0}


def test_logging_never_waits_for_a_slow_server_and_batches_the_backlog():
    client = SlowClient(delay=0.2)
    backend = MlflowBackend("run-1", client, plots=False)
    started = time.perf_counter()
    for step in range(1, 101):
        backend.log_metrics(_row(step), step)
    queued = time.perf_counter() - started
    backend.log_params({"stage2/total_steps": 100})
    assert backend.flush(timeout=30)
    assert queued < 0.1  # 100 steps queued while the first request is still in flight
    metrics = client.metrics()
    assert len(metrics) == 400
    loss_steps = [m.step for m in metrics if m.key == "stage2/train/loss"]
    assert loss_steps == list(range(1, 101))
    assert len(client.batches) <= 3  # the first step at once, then the backlog in one request
    assert [p.key for b in client.batches for p in b["params"]] == ["stage2/total_steps"]
    backend.close()


def test_flush_waits_for_everything_queued_before_it():
    client = SlowClient(delay=0.05)
    backend = MlflowBackend("run-1", client, plots=False)
    backend.log_metrics({"stage1/val_loss": 0.5}, 3)
    assert backend.flush(timeout=10)
    assert [(m.key, m.step, m.value) for m in client.metrics()] == [("stage1/val_loss", 3, 0.5)]
    backend.close()


def test_batches_respect_mlflow_limits():
    client = SlowClient()
    backend = MlflowBackend("run-1", client, plots=False)
    backend.log_params({f"p{i}": i for i in range(250)})
    backend.log_metrics({f"stage2/m{i}": float(i) for i in range(2500)}, 1)
    backend.close()
    assert max(len(b["params"]) for b in client.batches) == 100
    assert max(len(b["metrics"]) for b in client.batches) == 1000
    assert len(client.metrics()) == 2500


def test_failures_are_reported_not_raised(caplog):
    backend = MlflowBackend("run-1", SlowClient(fail=True), plots=False)
    backend.log_metrics(_row(1), 1)
    backend.close()  # must not raise: it may run in a finally after a training error
    assert backend.failures and "server went away" in backend.failures[0]
    assert "request(s) failed" in caplog.text


def test_close_uploads_loss_and_head_plots_per_stage():
    client = SlowClient()
    backend = MlflowBackend("run-1", client)
    for step in (1, 2, 3):
        backend.log_metrics(_row(step), step)
    backend.log_metrics({"stage2/val_loss": 0.4, "stage2/val_head0_loss": 0.9}, 3)
    backend.close()
    assert client.artifacts == [("plots", ["stage2_head_losses.png", "stage2_loss.png"])]


def test_metrics_logger_closes_the_backend_and_keeps_other_backends():
    client = SlowClient()
    history = HistoryBackend()
    logger = MetricsLogger([history, MlflowBackend("run-1", client, plots=False)])
    logger.log_metrics({"stage2/train/loss": 1.0}, 1)
    logger.close()
    assert history.rows == [{"step": 1, "stage2/train/loss": 1.0}]
    assert [m.key for m in client.metrics()] == ["stage2/train/loss"]


def test_stage_plots_are_pngs(tmp_path):
    rows = [(1, {"stage1/train/loss": 0.5}), (2, {"stage1/train/loss": 0.4, "stage1/val_loss": 0.45})]
    files = save_stage_plots(rows, tmp_path)
    assert [f.name for f in files] == ["stage1_loss.png"]  # no per-head figures in stage 1
    assert files[0].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_passed_through(value):
    client = SlowClient()
    backend = MlflowBackend("run-1", client, plots=False)
    backend.log_metrics({"stage1/val_value_explained_variance": value}, 2)
    backend.close()
    (metric,) = client.metrics()
    assert not math.isfinite(metric.value)  # NaN/inf reach MLflow, which stores them
