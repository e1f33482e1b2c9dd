"""``kedro wmtp compare``: train or reuse every recipe at every seed, then write the table.

The outputs of each run are read through the project's own catalog (the same entries the
pipeline wrote), so the comparison never guesses file locations. The table goes to
``<out>/comparison.json`` and ``comparison.md``; with tracking on, one MLflow parent run
holds the table and every run of the comparison is its child (tags ``recipe`` and
``seed``), so the MLflow UI shows the study as one expandable row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from weighted_mtp.comparison.runs import RunRecord, RunSpec, ensure_runs, plan_runs
from weighted_mtp.comparison.table import comparison_table, metric_order, run_result, to_markdown
from weighted_mtp.runtime.files import atomic_file

logger = logging.getLogger(__name__)

DEFAULT_MLFLOW_EXPERIMENT = "weighted-mtp/compare"


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _session_context(project_path: Path, spec: RunSpec) -> Any:
    """The Kedro context a run of ``spec`` had (its env, preset and experiment folder)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    with _environment({"WMTP_PRESET": spec.preset, "WMTP_EXPERIMENT": spec.experiment}):
        with KedroSession.create(project_path=project_path, env=spec.recipe) as session:
            return session.load_context()


def params_fingerprint(project_path: Path, spec: RunSpec) -> str:
    """sha256 of the merged parameters a run of ``spec`` reads from ``conf/`` (its
    ``--params`` are in the spec's settings), so a changed recipe file is a changed run."""
    import hashlib

    params = _session_context(project_path, spec).params
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def evaluation_k(project_path: Path, spec: RunSpec) -> list[int]:
    """``evaluation.k`` of the runs (the preset's, unless ``--params`` changed it)."""
    params = _session_context(project_path, spec).params
    k = params["evaluation"]["k"]
    for key, value in spec.params.items():
        if key == "evaluation.k":
            k = json.loads(value)
    return [int(x) for x in k]


def load_result(project_path: Path, spec: RunSpec, record: RunRecord, k_values: Sequence[int]) -> Any:
    """The :class:`~weighted_mtp.comparison.table.RunResult` of a finished run."""
    with _environment({"WMTP_PRESET": spec.preset, "WMTP_EXPERIMENT": spec.experiment}):
        catalog = _session_context(project_path, spec).catalog  # paths resolve with the run's folder
        completions = catalog.load("completions")
        try:
            best = catalog.load("best_model_metrics")
        except Exception as error:  # the table still has pass@k; the critic cells say "–"
            logger.warning("%s: no best-model metrics (%s)", spec.experiment, error)
            best = None
    return run_result(spec.recipe, spec.seed, completions, k_values, best, record.wall_time_s, record.reused)


def machine_description() -> str:
    """What the figures were measured on, for the table's header."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, {device}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def run_comparison(project_path: Path, *, recipes: Sequence[str], seeds: Sequence[int], preset: str,
                   params: Mapping[str, str] | None = None, out_dir: Path | None = None, mlflow: bool = True,
                   mlflow_experiment: str = DEFAULT_MLFLOW_EXPERIMENT, bootstrap_resamples: int = 1000,
                   report: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Train or reuse every (recipe, seed), then write and return the comparison table.

    Args:
        project_path: The Kedro project root.
        recipes: Recipes to compare (the baseline is the control of the differences).
        seeds: Seeds, e.g. ``[0, 1, 2]``.
        preset: Scale preset of every run (``WMTP_PRESET``), e.g. ``study``.
        params: Extra ``--params`` for every run (part of the reuse key).
        out_dir: Where the table, run records and logs go; default
            ``<data root>/08_reporting/comparison``.
        mlflow: Track the runs, nested under one parent run.
        mlflow_experiment: The MLflow experiment of the parent and its children.
        bootstrap_resamples: Resamples of every interval.
        report: Receives progress lines.

    Returns:
        The table (also written as JSON and markdown).
    """
    specs = plan_runs(recipes, seeds, preset, params)
    data_root = Path(os.environ.get("WMTP_DATA_ROOT") or project_path / "data")
    out_dir = out_dir or data_root / "08_reporting" / "comparison"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "kedro wmtp compare " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["wmtp", "compare"] else None
    parent = _ParentRun(project_path, mlflow_experiment) if mlflow else None
    started = time.monotonic()
    try:
        records = ensure_runs(specs, project_path, out_dir, mlflow=mlflow,
                              parent_run_id=parent.run_id if parent else None,
                              mlflow_experiment=mlflow_experiment, report=report,
                              fingerprint=lambda spec: params_fingerprint(project_path, spec))
        k_values = evaluation_k(project_path, specs[0])
        results = [load_result(project_path, spec, record, k_values) for spec, record in zip(specs, records)]
        table = comparison_table(results, metric_order(k_values), bootstrap_resamples)
        table.update({
            "date": time.strftime("%Y-%m-%d"), "machine": machine_description(),
            "command": command or f"kedro wmtp compare --preset {preset} --seed-list "
                                  f"{','.join(map(str, seeds))} --recipes {','.join(recipes)}",
            "preset": preset, "seeds": list(seeds), "params": dict(params or {}),
            "n_test_problems": max((row["metrics"].get("pass@1", {}).get("units", 0) for row in table["rows"]),
                                   default=0) // max(len(seeds), 1),
            "wall_time_s": time.monotonic() - started,
        })
        markdown = _document(table)
        with atomic_file(out_dir / "comparison.json") as handle:
            json.dump(_strict(table), handle, indent=2, allow_nan=False)  # null, not NaN: any JSON reader
        with atomic_file(out_dir / "comparison.md") as handle:
            handle.write(markdown)
        if parent:
            parent.finish(table, out_dir)
        report(f"Comparison table written to {out_dir / 'comparison.md'}\n\n{markdown}")
        return table
    except BaseException:
        if parent:
            parent.fail()
        raise


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float (a figure that does not exist) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def _document(table: Mapping[str, Any]) -> str:
    header = (f"# Recipe comparison ({table['preset']} preset)\n\n"
              f"{table['date']} · {table['machine']}\n\n"
              f"Command: `{table['command']}`\n\n"
              f"Seeds {table['seeds']}; {table['n_test_problems']} held-out test problems per seed. "
              "Means over (seed, problem) units with 95% bootstrap intervals; Δ = recipe − baseline, "
              "paired by problem and seed. AUROC: value at the last response token of the best "
              "model, correct vs incorrect validation responses. Bug hit: how often the most "
              "negative TD error lies in the tokens that differ from the nearest correct "
              "solution, against the share of the response those tokens are (chance).\n\n")
    return header + to_markdown(table)


class _ParentRun:
    """The MLflow run that groups a comparison's runs (same store as the project's runs)."""

    def __init__(self, project_path: Path, experiment: str) -> None:
        from mlflow.tracking import MlflowClient

        from weighted_mtp.tracking.server import check_tracking_store, local_artifact_location, resolve_tracking_uri

        uri = resolve_tracking_uri(None, project_path)
        check_tracking_store(uri)
        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=local_artifact_location(uri, experiment))
        run = self.client.create_run(experiment_id, run_name=f"compare/{time.strftime('%Y%m%d-%H%M%S')}",
                                     tags={"comparison": "parent"})
        self.run_id = run.info.run_id

    def finish(self, table: Mapping[str, Any], out_dir: Path) -> None:
        for row in table["rows"]:
            for metric, entry in row["metrics"].items():
                self.client.log_metric(self.run_id, f"{row['recipe']}/{_safe(metric)}", entry["mean"])
            for metric, entry in row["vs_baseline"].items():
                if entry:
                    self.client.log_metric(self.run_id, f"{row['recipe']}/delta_{_safe(metric)}", entry["mean"])
        self.client.log_param(self.run_id, "seeds", ",".join(map(str, table["seeds"])))
        self.client.log_param(self.run_id, "preset", table["preset"])
        self.client.log_artifact(self.run_id, str(out_dir / "comparison.md"), "comparison")
        self.client.log_artifact(self.run_id, str(out_dir / "comparison.json"), "comparison")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, "FAILED")


def _safe(metric: str) -> str:
    """MLflow rejects ``@`` in metric names: ``pass@1`` → ``pass_at_1``."""
    return metric.replace("@", "_at_")
