"""The metrics logger's MLflow destination: batches sent from a background thread.

A training step must not wait for the tracking server. :meth:`MlflowBackend.log_metrics`
only timestamps the figures and puts them on a queue; a daemon thread collects them and
sends one ``MlflowClient.log_batch`` (up to 1000 metrics or 100 params per request) at
most every ``interval_s`` seconds, so a slow server makes the batches larger, not the steps
slower. The interval matters for CPU as much as for latency: a request to a local sqlite
store costs ~50 ms of Python (holding the GIL the training thread needs) whether it holds
20 metrics or 200, so one request per step would cost a small model a quarter of its
speed (benchmarks/bench_tracking.py). :meth:`~MlflowBackend.flush` waits until everything
queued before it is sent; :meth:`~MlflowBackend.close` (the stage's end) flushes, stops
the thread and uploads the stage's loss plots.
"""

from __future__ import annotations

import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from weighted_mtp.tracking.plots import save_stage_plots

log = logging.getLogger(__name__)

MAX_METRICS_PER_REQUEST = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_REQUEST = 100
DEFAULT_INTERVAL_S = 2.0
# The figures the plots need; the backend keeps only these in memory.
_PLOTTED = re.compile(r"^[^/]+/(train/loss|val_loss|train/head\d+_loss|val_head\d+_loss)$")


class _Flush:
    """Queue marker: set once everything queued before it has been sent."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class MlflowBackend:
    """Sends metrics and params to one MLflow run without blocking the training loop.

    Args:
        run_id: The run to log to (the one the Kedro hook started).
        client: The client; default ``MlflowClient()`` on the current tracking URI.
        plots: Upload ``plots/{stage}_loss.png`` and ``plots/{stage}_head_losses.png`` on
            :meth:`close`.
        interval_s: Least time between two sends (metrics appear in the UI that much
            later); a full request (1000 metrics) or a flush sends at once.

    Attributes:
        failures: Messages of requests MLflow refused (reported as warnings; training
            goes on: MLflow's client already retried transient errors).
        requests: Number of ``log_batch`` requests sent.
    """

    def __init__(self, run_id: str, client: MlflowClient | None = None, *, plots: bool = True,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.run_id = run_id
        self._client = client if client is not None else MlflowClient()
        self._plots = plots
        self._interval = interval_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._rows: list[tuple[int, dict[str, float]]] = []
        self.failures: list[str] = []
        self.requests = 0

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue ``metrics`` at ``step`` (stamped now); returns at once."""
        stamp = int(time.time() * 1000)
        self._start()
        self._queue.put(("metrics", int(step), stamp, dict(metrics)))
        plotted = {key: value for key, value in metrics.items() if _PLOTTED.match(key)}
        if plotted:
            self._rows.append((int(step), plotted))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue run parameters (values become strings, as MLflow stores them)."""
        self._start()
        self._queue.put(("params", dict(params)))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent; False when ``timeout`` ran out."""
        if self._thread is None:
            return True
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Send what is queued, stop the thread, upload the plots. Never raises: a
        tracking problem must not hide the training error a ``finally`` may be closing on."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self.failures:
            log.warning("MLflow run %s: %d request(s) failed; first: %s", self.run_id,
                        len(self.failures), self.failures[0])
        if self._plots and self._rows:
            self._upload_plots()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mlflow-metrics", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        """Thread body: collect until the interval is over (or a request is full), send;
        on a flush or stop marker send at once, then acknowledge it."""
        metrics: list[Metric] = []
        params: list[Param] = []
        last_send = time.monotonic()
        while True:
            due = last_send + self._interval
            wait = None if not (metrics or params) else max(0.0, due - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP and not isinstance(item, _Flush):
                self._collect(item, metrics, params)
                if len(metrics) < MAX_METRICS_PER_REQUEST and time.monotonic() < due:
                    continue
            self._send(metrics, params)
            metrics, params, last_send = [], [], time.monotonic()
            if item is _STOP:
                return
            if isinstance(item, _Flush):
                item.done.set()

    @staticmethod
    def _collect(item: tuple, metrics: list[Metric], params: list[Param]) -> None:
        if item[0] == "metrics":
            _, step, stamp, values = item
            metrics.extend(Metric(key, float(value), stamp, step) for key, value in values.items())
        else:
            params.extend(_params(item[1]))

    def _send(self, metrics: list[Metric], params: list[Param]) -> None:
        for start in range(0, len(params), MAX_PARAMS_PER_REQUEST):
            self._request(params=params[start : start + MAX_PARAMS_PER_REQUEST])
        for start in range(0, len(metrics), MAX_METRICS_PER_REQUEST):
            self._request(metrics=metrics[start : start + MAX_METRICS_PER_REQUEST])

    def _request(self, metrics: Iterable[Metric] = (), params: Iterable[Param] = ()) -> None:
        try:
            self._client.log_batch(self.run_id, metrics=list(metrics), params=list(params))
            self.requests += 1
        except Exception as exc:  # any store error; a dead thread would lose every later metric
            self.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            if len(self.failures) == 1:
                log.warning("MLflow run %s: log_batch failed (%s); training continues.",
                            self.run_id, self.failures[0])

    def _upload_plots(self) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="wmtp-plots-") as folder:
                files = save_stage_plots(self._rows, Path(folder))
                if files:
                    self._client.log_artifacts(self.run_id, folder, "plots")
        except Exception as exc:  # a plot is not worth failing a finished stage for
            log.warning("MLflow run %s: the loss plots were not uploaded: %s", self.run_id, exc)


def _params(values: Mapping[str, Any]) -> list[Param]:
    """MLflow params, values cut to MLflow's limit (with a warning) rather than refused."""
    out = []
    for key, value in values.items():
        text = str(value)
        if len(text) > MAX_PARAM_VAL_LENGTH:
            log.warning("MLflow param %s is %d characters; keeping the first %d.", key, len(text),
                        MAX_PARAM_VAL_LENGTH)
            text = text[:MAX_PARAM_VAL_LENGTH]
        out.append(Param(str(key), text))
    return out
