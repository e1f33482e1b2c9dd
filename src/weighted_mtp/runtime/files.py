"""Crash-safe writes: every file and directory the project produces goes through here.

A run killed mid-write must leave the previous version readable, never half a file, so
files are written next to their target and renamed over it (a rename within one
filesystem is atomic). Temp files are created with the permissions a plain ``open`` would
give (``mkstemp`` alone makes them owner-only).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

log = logging.getLogger(__name__)


def _default_mode(directory: bool = False) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file next to ``path``; on success it is fsynced and renamed over ``path``.

    On any error the temp file is removed and ``path`` is left as it was.

    Args:
        path: The destination; its parent directories are created.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kwargs: Passed to :func:`os.fdopen` (e.g. ``encoding``, ``newline``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _default_mode())
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def staging_directory(target: str | Path) -> Path:
    """An empty directory next to ``target``, to fill and then :func:`replace_directory`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=_default_mode(directory=True))
    return staging


def replace_directory(new: str | Path, target: str | Path) -> None:
    """Swap ``new`` in as ``target`` with renames only; the old one is restored on failure.

    One of the two directories exists at every moment, so a crash never loses the previous
    model, tokenizer or dataset folder.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_temp_files(base: str | Path) -> int:
    """Delete the temp files and staging folders that an interrupted write of this module
    leaves (``.name.*.tmp`` of :func:`atomic_file`, ``.name.tmp-*`` of
    :func:`staging_directory`, ``.name.old-*`` of :func:`replace_directory`); returns how
    many. Call it only where no write is under way (the run lock held).

    An ``.name.old-*`` folder whose ``name`` is missing is the previous version of a folder
    (a sharded checkpoint, a model) that a crash caught between ``replace_directory``'s two
    renames: it is put back instead of deleted.
    """
    removed = 0
    for path in sorted(Path(base).rglob(".*"), reverse=True):
        name = path.name
        if not (name.endswith(".tmp") or ".tmp-" in name or ".old-" in name):
            continue
        if ".old-" in name and path.is_dir():
            target = path.with_name(name[1:name.rindex(".old-")])
            if not target.exists():
                os.replace(path, target)
                log.info("Restored %s, which a crash left as %s", target, path.name)
                continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("Removed %d temp file(s) an interrupted run left under %s", removed, base)
    return removed
