"""Run folders: each run's checkpoints under their own folder, so nothing overwrites a run.

``<project.checkpoint_dir>/runs/<run id>/checkpoint_*.pt``: running ``kedro run`` twice
keeps both runs' checkpoints (as Lightning's ``version_N`` folders do), a resume or an
export finds the newest run's files, and ``training.keep_runs`` prunes the oldest. The run
id is ``WMTP_RUN_ID`` when set (the run-lock hook sets it once per run, the same on every
torchrun rank), else one generated per process (docs/TRAINING.md, "Resume").
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from weighted_mtp.runtime.files import remove_stale_temp_files
from weighted_mtp.runtime.sharded_checkpoint import MARKER, SUFFIX

log = logging.getLogger(__name__)

RUN_ID_VARIABLE = "WMTP_RUN_ID"
RUNS = "runs"


def new_run_id() -> str:
    """A sortable, readable id: UTC time to the second, then the process id."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"


_PROCESS_RUN_ID: list[str] = []  # the id of training outside a Kedro run (a notebook, a test)


def current_run_id() -> str:
    """This run's id: ``WMTP_RUN_ID`` (set by the run-lock hook for the duration of a Kedro
    run, or by the user), else one id for this process, kept here and not exported, so a
    Kedro run started later in the same process still gets its own."""
    if os.environ.get(RUN_ID_VARIABLE):
        return os.environ[RUN_ID_VARIABLE]
    if not _PROCESS_RUN_ID:
        _PROCESS_RUN_ID.append(new_run_id())
    return _PROCESS_RUN_ID[0]


def run_folder(base: str | Path) -> Path:
    """``<base>/runs/<run id>``: where this run's checkpoints go."""
    return Path(base) / RUNS / current_run_id()


def open_run_folder(base: str | Path, keep_runs: int | None = None) -> Path:
    """Create this run's folder; remove temp files a killed run left under ``base``; keep only
    the newest ``keep_runs`` run folders (None: all). Call it with the run lock held."""
    base = Path(base)
    folder = run_folder(base)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(base)
    if keep_runs:
        older = sorted((p for p in (base / RUNS).iterdir() if p.is_dir() and p != folder), key=lambda p: p.name)
        for stale in older[: max(0, len(older) - (keep_runs - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
            log.info("training.keep_runs %d: removed the old run folder %s", keep_runs, stale)
    return folder


def latest_checkpoint(run_dir: str | Path, stage: str, tag: str) -> Path | None:
    """The newest ``checkpoint_{stage}_{tag}.pt`` file or complete ``.dcp`` folder (a sharded
    checkpoint with its ``COMPLETE`` marker) in ``run_dir`` and its sibling run folders."""
    run_dir = Path(run_dir)
    stem = f"checkpoint_{stage}_{tag}"
    candidates = [*run_dir.parent.glob(f"*/{stem}.pt"), *run_dir.parent.glob(f"*/{stem}{SUFFIX}"),
                  run_dir / f"{stem}.pt", run_dir / f"{stem}{SUFFIX}"]
    found = {p for p in candidates if p.is_file() or (p / MARKER).is_file()}
    return max(found, key=_written_at, default=None)


def _written_at(path: Path) -> float:
    """When a checkpoint was completed: a file's mtime, a sharded folder's marker's."""
    return (path / MARKER).stat().st_mtime if path.is_dir() else path.stat().st_mtime
