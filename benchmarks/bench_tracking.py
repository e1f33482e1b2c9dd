"""Benchmark: the cost of MLflow tracking on training throughput.

    python benchmarks/bench_tracking.py                 # local sqlite store, writes results/tracking.json
    python benchmarks/bench_tracking.py --tracking-uri http://127.0.0.1:5000

The same short stage-2 run (a small micro model on the embedded dataset, logging every
step: the worst case) is trained in turns with three metric loggers. The model is smaller
than conf/base's so that a step takes tens of milliseconds, as a GPU step does: with a
1.5 s CPU step any logging cost disappears in the noise.

- ``off``: console-free history only (what tracking adds is measured against this);
- ``async``: plus :class:`~weighted_mtp.tracking.backend.MlflowBackend`, the project's
  backend (a background thread sends batches);
- ``sync``: plus a backend that sends each step's metrics with one ``log_batch`` before
  the step returns (the naive way, e.g. ``mlflow.log_metrics`` in the loop).

Turns alternate (off, async, sync, off, ...) so a machine that gets busier affects all
three alike. Reported: the median of the per-step tokens/s the loop measures (first step
of each run left out: warm-up), the stage's median wall time (including the final flush),
and ratios to ``off``.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from weighted_mtp.runtime.results import write_json
from weighted_mtp.config import validate_config
from weighted_mtp.data import problems_to_records, split_by_problem, tokenizer_training_texts, train_bpe_tokenizer
from weighted_mtp.data.jsonl import read_jsonl
from weighted_mtp.models import create_micro_model
from weighted_mtp.tracking.backend import MlflowBackend
from weighted_mtp.training.metrics_logger import HistoryBackend, MetricsLogger
from weighted_mtp.training.trainer import trainer_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tracking.json"
MODES = ("off", "async", "sync")


class SyncBackend:
    """One blocking ``log_batch`` per logged step: the baseline the async backend avoids."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        """Params are the same in every mode; not part of the measurement."""

    def close(self) -> None:
        """Nothing queued."""


def load_data(args: argparse.Namespace, params: dict[str, Any]) -> tuple[list, list, Any]:
    """Train/validation records of the embedded dataset and a BPE tokenizer trained on them."""
    dataset = params["dataset"]
    problems = read_jsonl(ROOT / "data" / "01_raw" / "code_problems.jsonl")
    records = problems_to_records(problems, dataset["max_solutions_per_problem"], dataset["split_seed"])
    train, validation = split_by_problem(records, dataset["validation_fraction"], dataset["split_seed"])
    tokenizer = train_bpe_tokenizer(tokenizer_training_texts(train), vocab_size=args.vocab)
    return train, validation[: args.val_rows], tokenizer


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    """conf/base parameters with a short stage 2 that logs every step and never evaluates."""
    with open(ROOT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        params = yaml.safe_load(handle)
    params["project"]["experiment"] = "bench-tracking"  # the file's is ${globals:experiment}
    params["dataset"]["max_length"] = args.max_length
    params["training"].update({"log_interval": 1, "eval_interval": 10**6, "seed": 0})
    params["training"]["stage2"].update({"n_epochs": args.epochs, "batch_size": args.batch})
    return params


def one_run(mode: str, args: argparse.Namespace, config: Any, data: tuple, base_model: Any,
            client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    """Train stage 2 once with ``mode``'s logger; return tokens/s per step and wall time."""
    train, validation, tokenizer = data
    backends: list[Any] = [HistoryBackend()]
    mlflow_backend = None
    if mode != "off":
        run_id = client.create_run(experiment_id, run_name=mode).info.run_id
        mlflow_backend = MlflowBackend(run_id, client, plots=False) if mode == "async" else SyncBackend(client, run_id)
        backends.append(mlflow_backend)
    logger = MetricsLogger(backends)
    started = time.perf_counter()
    result = trainer_for("stage2", config, logger=logger).fit(copy.deepcopy(base_model), tokenizer, train,
                                                               validation, progress=False)
    seconds = time.perf_counter() - started
    rates = [row["tokens_per_s"] for row in result.history if "tokens_per_s" in row][1:]
    requests = getattr(mlflow_backend, "requests", None) if mode == "async" else (len(rates) + 1 if mode == "sync" else 0)
    return {"tokens_per_s": rates, "seconds": seconds, "requests": requests, "steps": result.global_step}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the modes ``args.repeats`` times and summarise."""
    params = build_params(args)
    config = validate_config(params)
    data = load_data(args, params)
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as folder:
        uri = args.tracking_uri or f"sqlite:///{folder}/mlflow.db"
        client = MlflowClient(uri)
        experiment_id = client.create_experiment(f"bench-tracking-{int(time.time())}",
                                                 artifact_location=Path(folder, "artifacts").as_uri())
        base_model = create_micro_model(Path(folder) / "model", vocab_size=len(data[2]), seed=0,
                                        dim=args.dim, n_layers=args.layers, n_heads=2, n_kv_heads=1,
                                        n_future_tokens=4, max_seq_len=args.max_length)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                runs[mode].append(one_run(mode, args, config, data, base_model, client, experiment_id))
    return summarise(runs, args, uri, len(data[0]))


def summarise(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, uri: str, train_rows: int) -> dict:
    """Medians per mode and ratios to ``off``."""
    rate = {mode: statistics.median([r for run in runs[mode] for r in run["tokens_per_s"]]) for mode in MODES}
    seconds = {mode: statistics.median([run["seconds"] for run in runs[mode]]) for mode in MODES}
    config = {**{k: v for k, v in vars(args).items() if k != "out"}, "out": os.path.relpath(args.out, ROOT),
              "store": "sqlite (temporary)" if args.tracking_uri is None else uri, "train_rows": train_rows,
              "steps_per_run": runs["off"][0]["steps"]}
    return {
        "benchmark": "bench_tracking",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
                        "cpus": os.cpu_count()},
        "tokens_per_s_median": rate,
        "stage_seconds_median": seconds,
        "ratio_tokens_per_s_vs_off": {mode: rate[mode] / rate["off"] for mode in MODES if mode != "off"},
        "ratio_stage_seconds_vs_off": {mode: seconds[mode] / seconds["off"] for mode in MODES if mode != "off"},
        "log_batch_requests_per_run": {mode: [run["requests"] for run in runs[mode]] for mode in ("async", "sync")},
    }


def _report(result: dict) -> None:
    config = result["config"]
    print(f"stage 2, {config['steps_per_run']} steps x {config['repeats']} runs per mode, logging every step, "
          f"store {config['store']}:")
    for mode in MODES:
        ratio = result["ratio_tokens_per_s_vs_off"].get(mode, 1.0)
        print(f"  {mode:5s} tokens/s median {result['tokens_per_s_median'][mode]:9.0f}  ({ratio:.3f} x off)   "
              f"stage {result['stage_seconds_median'][mode]:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None, help="default: a temporary local sqlite store")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode")
    parser.add_argument("--epochs", type=float, default=0.5, help="stage-2 n_epochs of each run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--layers", type=int, default=5, help="n_layers (trunk blocks = layers - 4 + 1)")
    parser.add_argument("--val-rows", type=int, default=16, help="validation rows (one evaluation at the end)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    write_json(result, args.out)
    _report(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
