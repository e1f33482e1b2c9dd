"""The runs of a recipe comparison: one ``kedro run`` per recipe and seed, reused when done.

Each run is a full ``kedro run --env <recipe>`` in a child process (the project's own
pipeline, exactly as a user would start it), in its own experiment folder
(``$WMTP_EXPERIMENT``), so checkpoints, best models and completions of different recipes
and seeds never mix. A run counts as finished when its evaluation was written and a
record of it (``runs/<experiment>.json``, written last, atomically) holds the same
settings; a second ``compare`` call reads it instead of training again.

What a seed changes: ``training.seed`` (data order, value-head init, dropout) and
``evaluation.seed`` (the sampled completions). The data split, the test problems and the
warmed-up micro model are shared by every run, so runs pair up problem by problem.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from weighted_mtp.runtime.files import atomic_file

logger = logging.getLogger(__name__)

RECIPES = ("baseline", "verifiable", "rho1", "next_token")
"""Recipes a comparison knows, in table order; baseline first (the differences' control)."""


@dataclass(frozen=True)
class RunSpec:
    """One recipe at one seed, under one preset and the same extra parameters."""

    recipe: str
    seed: int
    preset: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        """The run's folder name under checkpoints, best models and reports."""
        return f"compare-{self.preset}-{self.recipe}-seed{self.seed}"

    def settings(self) -> dict[str, Any]:
        """What must match for a finished run to be reused."""
        return {"recipe": self.recipe, "seed": self.seed, "preset": self.preset,
                "params": dict(sorted(self.params.items()))}

    def kedro_params(self, mlflow: bool) -> str:
        """``--params`` of the child ``kedro run``."""
        params = {"training.seed": str(self.seed), "evaluation.seed": str(self.seed),
                  **({} if mlflow else {"mlflow.enabled": "false"}), **self.params}
        return ",".join(f"{key}={value}" for key, value in params.items())


@dataclass(frozen=True)
class RunRecord:
    """A finished run: its settings, the fingerprint of its merged parameters, wall time."""

    experiment: str
    settings: dict[str, Any]
    wall_time_s: float
    finished_at: str
    log_file: str
    reused: bool = False
    params_sha256: str | None = None


def plan_runs(recipes: Sequence[str], seeds: Sequence[int], preset: str,
              params: Mapping[str, str] | None = None) -> list[RunSpec]:
    """Seed-major order: every recipe of seed 0 first, so a comparison cut short still
    holds complete seeds.

    Raises:
        ValueError: For an unknown recipe, no recipe, no seed or a repeated seed.
    """
    unknown = [recipe for recipe in recipes if recipe not in RECIPES]
    if unknown:
        raise ValueError(f"--recipes: unknown {unknown}; choose from {list(RECIPES)}")
    if not recipes or not seeds:
        raise ValueError("a comparison needs at least one recipe and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seed-list repeats a seed: {list(seeds)}")
    ordered = [recipe for recipe in RECIPES if recipe in recipes]
    return [RunSpec(recipe, seed, preset, dict(params or {})) for seed in seeds for recipe in ordered]


def record_path(out_dir: Path, spec: RunSpec) -> Path:
    return out_dir / "runs" / f"{spec.experiment}.json"


def finished_record(out_dir: Path, spec: RunSpec, params_sha256: str | None = None) -> RunRecord | None:
    """The record of a finished run with the same settings and merged parameters, else None
    (with the reason logged): editing ``conf/<recipe>`` makes its runs train again."""
    path = record_path(out_dir, spec)
    if not path.is_file():
        return None
    try:
        record = RunRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:
        logger.warning("Ignoring unreadable run record %s (%s): running %s again", path, error, spec.experiment)
        return None
    if record.settings != spec.settings():
        logger.warning("Run record %s has other settings (%s, now %s): running it again",
                       path, record.settings, spec.settings())
        return None
    if params_sha256 and record.params_sha256 and record.params_sha256 != params_sha256:
        logger.warning("%s ran with other parameters (the recipe's config changed since): running it again",
                       spec.experiment)
        return None
    return RunRecord(**{**asdict(record), "reused": True})


def child_environment(spec: RunSpec, parent_run_id: str | None, mlflow_experiment: str,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the child ``kedro run``: its preset, folder and MLflow nesting."""
    env = dict(os.environ if base is None else base)
    env.update({
        "WMTP_PRESET": spec.preset,
        "WMTP_EXPERIMENT": spec.experiment,
        "MLFLOW_EXPERIMENT_NAME": mlflow_experiment,
        "WMTP_MLFLOW_RUN_NAME": f"{spec.recipe}/seed{spec.seed}",
        "WMTP_MLFLOW_TAGS": json.dumps({"recipe": spec.recipe, "seed": spec.seed,
                                        "comparison": spec.preset}),
        "PYTHONUNBUFFERED": "1",
    })
    if parent_run_id:
        env["WMTP_MLFLOW_PARENT_RUN_ID"] = parent_run_id
    else:
        env.pop("WMTP_MLFLOW_PARENT_RUN_ID", None)
    return env


def run_one(spec: RunSpec, project_path: Path, out_dir: Path, *, mlflow: bool,
            parent_run_id: str | None, mlflow_experiment: str, params_sha256: str | None = None) -> RunRecord:
    """Train and evaluate ``spec`` with ``kedro run``; its output goes to a log file.

    Raises:
        RuntimeError: When the run fails, naming its log file and the last lines of it.
    """
    log_file = out_dir / "logs" / f"{spec.experiment}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "kedro", "run", "--env", spec.recipe,
               "--params", spec.kedro_params(mlflow)]
    started = time.monotonic()
    with log_file.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        # The project's own `kedro run` (trusted code, like torchrun's workers), not a program
        # from a model or a dataset: those only ever run through weighted_mtp.execution.
        done = subprocess.run(command, cwd=project_path, stdout=log, stderr=subprocess.STDOUT,
                              env=child_environment(spec, parent_run_id if mlflow else None, mlflow_experiment),
                              check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        tail = "".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines(True)[-15:])
        raise RuntimeError(f"{spec.recipe} seed {spec.seed} failed (exit {done.returncode}) after "
                           f"{wall:.0f} s; its log is {log_file}. Last lines:\n{tail}")
    record = RunRecord(spec.experiment, spec.settings(), wall, time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       str(log_file), params_sha256=params_sha256)
    path = record_path(out_dir, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        json.dump(asdict(record), handle, indent=2)
    return record


def ensure_runs(specs: Sequence[RunSpec], project_path: Path, out_dir: Path, *, mlflow: bool,
                parent_run_id: str | None, mlflow_experiment: str,
                report: Callable[[str], None] = logger.info,
                fingerprint: Callable[[RunSpec], str | None] = lambda spec: None) -> list[RunRecord]:
    """Every spec finished: reused when its record matches, else run now, one at a time.

    ``report`` receives one line per run (start, finish with its wall time, reuse);
    ``fingerprint`` gives the hash of a spec's merged parameters (part of the reuse key).
    """
    records = []
    hashes = {spec.experiment: fingerprint(spec) for spec in specs}
    finished = {spec.experiment: finished_record(out_dir, spec, hashes[spec.experiment]) for spec in specs}
    todo = [spec for spec in specs if finished[spec.experiment] is None]
    report(f"{len(specs)} runs: {len(specs) - len(todo)} finished earlier (reused), {len(todo)} to run")
    spent: list[float] = []
    for spec in specs:
        record = finished[spec.experiment]
        if record is not None:
            report(f"  {spec.recipe} seed {spec.seed}: reused ({record.wall_time_s / 60:.1f} min when it ran)")
            records.append(record)
            continue
        position = len(spent) + 1
        eta = (f", about {sum(spent) / len(spent) * (len(todo) - len(spent)) / 60:.0f} min left in all"
               if spent else "")
        report(f"  [{position}/{len(todo)}] {spec.recipe} seed {spec.seed}: running "
               f"(log: {out_dir / 'logs' / (spec.experiment + '.log')}){eta}")
        record = run_one(spec, project_path, out_dir, mlflow=mlflow, parent_run_id=parent_run_id,
                         mlflow_experiment=mlflow_experiment, params_sha256=hashes[spec.experiment])
        spent.append(record.wall_time_s)
        report(f"  [{position}/{len(todo)}] {spec.recipe} seed {spec.seed}: done in {record.wall_time_s / 60:.1f} min")
        records.append(record)
    return records
