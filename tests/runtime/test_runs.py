"""Run folders and the run lock, on real files and real processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from weighted_mtp.runtime import runs
from weighted_mtp.runtime.files import remove_stale_temp_files
from weighted_mtp.runtime.run_lock import RunLock, RunLockedError


def test_each_run_gets_its_own_folder_and_keep_runs_prunes_the_oldest(tmp_path, monkeypatch):
    base = tmp_path / "experiment"
    for name in ("20260101-000000-1", "20260102-000000-2", "20260103-000000-3"):
        (base / "runs" / name).mkdir(parents=True)
        (base / "runs" / name / "checkpoint_stage2_best.pt").write_bytes(b"x")
    monkeypatch.setenv(runs.RUN_ID_VARIABLE, "20260104-000000-4")
    folder = runs.open_run_folder(base, keep_runs=2)
    assert folder == base / "runs" / "20260104-000000-4" and folder.is_dir()
    assert [p.name for p in sorted((base / "runs").iterdir())] == ["20260103-000000-3", "20260104-000000-4"]
    monkeypatch.setenv(runs.RUN_ID_VARIABLE, "20260105-000000-5")
    runs.open_run_folder(base)  # keep_runs None: keep every run
    assert len(list((base / "runs").iterdir())) == 3


def test_temp_files_of_an_interrupted_write_are_removed_at_start(tmp_path, monkeypatch):
    base = tmp_path / "experiment"
    stale = [base / "runs" / "a" / ".checkpoint_stage2_last.pt.k3j2.tmp", base / ".stage1_model.tmp-1a2b3c4d",
             base / ".stage1_model.old-5e6f7a8b"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.mkdir() if "model" in path.name else path.write_bytes(b"half"))
    kept = base / "runs" / "a" / "checkpoint_stage2_last.pt"
    kept.write_bytes(b"whole")
    monkeypatch.setenv(runs.RUN_ID_VARIABLE, "b")
    runs.open_run_folder(base)
    assert not any(path.exists() for path in stale) and kept.read_bytes() == b"whole"
    # the .old- folder's target was missing (a crash between the two renames): put back
    assert (base / "stage1_model").is_dir()


def test_an_old_folder_is_dropped_when_its_replacement_is_in_place(tmp_path):
    (tmp_path / "checkpoint_stage2_last.dcp").mkdir()
    (tmp_path / ".checkpoint_stage2_last.dcp.old-1a2b3c4d").mkdir()
    assert remove_stale_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_stage2_last.dcp"]


def test_latest_checkpoint_takes_complete_sharded_folders_only(tmp_path):
    """A ``.dcp`` folder counts once its COMPLETE marker exists (its write finished)."""
    pt = tmp_path / "runs" / "a" / "checkpoint_stage2_last.pt"
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"x")
    time.sleep(0.01)
    sharded = tmp_path / "runs" / "b" / "checkpoint_stage2_last.dcp"
    sharded.mkdir(parents=True)
    assert runs.latest_checkpoint(tmp_path / "runs" / "c", "stage2", "last") == pt
    (sharded / "COMPLETE").write_text("{}")
    assert runs.latest_checkpoint(tmp_path / "runs" / "c", "stage2", "last") == sharded


def test_latest_checkpoint_is_the_newest_of_every_run(tmp_path):
    older, newer = tmp_path / "runs" / "a" / "checkpoint_stage2_last.pt", tmp_path / "runs" / "b" / "checkpoint_stage2_last.pt"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        time.sleep(0.01)
    assert runs.latest_checkpoint(tmp_path / "runs" / "c", "stage2", "last") == newer
    assert runs.latest_checkpoint(tmp_path / "runs" / "c", "stage1", "last") is None


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from weighted_mtp.runtime.run_lock import RunLock; "
        f"lock = RunLock({str(tmp_path)!r}, 'run-a'); lock.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on .* \(run run-a: "):
            RunLock(tmp_path, "run-b").acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    with RunLock(tmp_path, "run-b") as lock:  # the kernel released the dead holder's lock
        assert lock.held


def test_training_outside_a_kedro_run_does_not_leak_its_id_into_later_runs(monkeypatch):
    monkeypatch.delenv(runs.RUN_ID_VARIABLE, raising=False)
    first = runs.current_run_id()
    assert runs.current_run_id() == first  # one id for the process's own training
    assert runs.RUN_ID_VARIABLE not in __import__("os").environ  # a later Kedro run picks its own
    monkeypatch.setenv(runs.RUN_ID_VARIABLE, "set-by-the-run-hook")
    assert runs.current_run_id() == "set-by-the-run-hook"
