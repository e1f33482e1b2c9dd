"""Run the real Kedro project on a tiny configuration inside a scratch copy.

A scratch project holds a copy of the project's ``conf/`` and ``pyproject.toml`` and a
slice of the shipped raw data; the package itself is the installed one. Kedro makes
catalog paths absolute against the project path, and parameter paths are relative to the
working directory, so a run happens with the scratch project as both and nothing a test
writes lands in the checkout. Only runtime params shrink the run.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "code_problems.jsonl"

TINY_PARAMS: dict[str, Any] = {
    "models": {"policy": {"micro": {"dim": 32, "n_layers": 5, "n_heads": 2, "n_kv_heads": 1,
                                    "n_future_tokens": 4, "max_seq_len": 384}}},
    "dataset": {"max_length": 384, "tokenizer_vocab_size": 800, "max_solutions_per_problem": 2},
    "training": {
        "log_interval": 2,
        "eval_interval": 3,
        "pretrain": {"n_epochs": 0.2, "batch_size": 8},
        "stage1": {"n_epochs": 0.2, "batch_size": 8},
        "stage2": {"n_epochs": 0.4, "batch_size": 8, "learning_rate": 1.0e-3},
    },
    "evaluation": {"n_samples": 2, "k": [1, 2], "max_new_tokens": 48, "train_sample": 3,
                   "bootstrap_resamples": 200},
}


def make_scratch_project(directory: Path, n_problems: int = 30) -> Path:
    """A project copy with the first ``n_problems`` raw problems of the shipped set."""
    shutil.copytree(ROOT / "conf", directory / "conf", ignore=shutil.ignore_patterns("local"))
    (directory / "conf" / "local").mkdir()
    (directory / "src").mkdir()  # the package is the installed one; Kedro wants the folder
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, directory / name)
    raw_dir = directory / "data" / "01_raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    with RAW.open() as source, (raw_dir / RAW.name).open("w") as target:
        for index, line in enumerate(source):
            if index >= n_problems:
                break
            target.write(line)
    return directory


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_project(
    workdir: Path,
    env: str | None = None,
    extra_params: dict[str, Any] | None = None,
    **run_kwargs: Any,
) -> dict[str, Any]:
    """``kedro run`` in ``workdir`` with the tiny params (plus ``extra_params``)."""
    params = merge(TINY_PARAMS, extra_params or {})
    bootstrap_project(workdir)
    with working_directory(workdir):
        with KedroSession.create(project_path=workdir, env=env, runtime_params=params) as session:
            return session.run(**run_kwargs)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())



def run_folders(experiment_dir: Path) -> list[Path]:
    """The run folders under ``<checkpoints>/<experiment>/runs``, oldest first (ids sort by time)."""
    return sorted((p for p in (Path(experiment_dir) / "runs").iterdir() if p.is_dir()), key=lambda p: p.name)


def newest_run(experiment_dir: Path) -> Path:
    """The newest run's checkpoint folder of an experiment."""
    return run_folders(experiment_dir)[-1]
