"""Crash-safe writes: old content survives a failed write; new files get normal permissions."""

from __future__ import annotations

import os
import stat

import pytest

from weighted_mtp.runtime.files import atomic_file, replace_directory, staging_directory


def test_atomic_file_replaces_content_with_plain_permissions(tmp_path):
    target = tmp_path / "sub" / "records.jsonl"
    with atomic_file(target) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["records.jsonl"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(target, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_replace_directory_swaps_and_cleans_up(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    staging = staging_directory(target)
    (staging / "weights").write_text("new")
    replace_directory(staging, target)
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_directory_restores_the_old_one_when_the_swap_fails(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(OSError):
        replace_directory(tmp_path / "missing-staging", target)
    assert (target / "weights").read_text() == "old"
