"""Where a catalog dataset lives: a path on an fsspec filesystem, written without half files.

Kedro's own datasets split ``filepath`` with ``get_protocol_and_path`` and read and write it
through ``fsspec.filesystem(protocol)``; the project's datasets do the same, so a catalog
entry may say ``data/x.jsonl``, ``file:///abs/x.jsonl``, ``memory:///x.jsonl`` or
``s3://bucket/x.jsonl``. A write never leaves half a file or folder for the next run to
trust: local files and folders go through :mod:`weighted_mtp.runtime.files` (temp next to
the target, then a rename); on another filesystem the data is written next to the target
and moved over it (a rename where the filesystem has one, a copy and delete otherwise, so
an object store may briefly show neither version of a folder).
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

import fsspec
from kedro.io.core import CLOUD_PROTOCOLS, HTTP_PROTOCOLS, get_protocol_and_path

from weighted_mtp.runtime.files import atomic_file, replace_directory, staging_directory


class Storage:
    """A file or folder path on its filesystem.

    Args:
        filepath: A local path, or a URL with a protocol fsspec knows.
        credentials: Passed to the filesystem (e.g. ``key``/``secret`` for ``s3``), as in
            Kedro's datasets.
        fs_args: Further filesystem arguments.

    Raises:
        ValueError: A local-style URL with a host part (``memory://data/x``): Kedro would
            silently drop ``data``; the message gives the three-slash form.
    """

    def __init__(self, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None) -> None:
        protocol, path = get_protocol_and_path(str(filepath))
        host = urlsplit(str(filepath)).netloc if "://" in str(filepath) else ""
        if host and protocol not in CLOUD_PROTOCOLS + HTTP_PROTOCOLS:
            raise ValueError(f"{filepath}: {protocol}:// paths have no host, and Kedro would read "
                             f"this one as {protocol}://{path} (dropping {host!r}); write "
                             f"{protocol}:///{host}{path}")
        self.protocol = protocol
        self.path = path
        self.fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))

    @property
    def is_local(self) -> bool:
        """On this machine's filesystem: written with atomic renames."""
        return self.protocol == "file"

    def __str__(self) -> str:
        return self.path if self.is_local else f"{self.protocol}://{self.path}"

    def join(self, *parts: str) -> str:
        """``path/part/...`` on the same filesystem."""
        return str(PurePosixPath(self.path, *parts))

    def child(self, *parts: str) -> Storage:
        """``path/part/...`` as a Storage on the same filesystem (same credentials)."""
        child = copy.copy(self)
        child.path = self.join(*parts)
        return child

    def isfile(self, *parts: str) -> bool:
        return bool(self.fs.isfile(self.join(*parts)))

    def isdir(self, *parts: str) -> bool:
        return bool(self.fs.isdir(self.join(*parts)))

    def open_read(self) -> IO[bytes]:
        """The file, opened for binary reading."""
        return self.fs.open(self.path, "rb")

    @contextmanager
    def write_file(self, **text: Any) -> Iterator[IO[str]]:
        """A text handle whose content replaces the file when the block ends without error.

        Args:
            **text: ``encoding``, ``newline``, ``errors``.
        """
        if self.is_local:
            with atomic_file(self.path, "w", **text) as handle:
                yield handle
            return
        target = PurePosixPath(self.path)
        temporary = str(target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.fs.makedirs(str(target.parent), exist_ok=True)
        try:
            with self.fs.open(temporary, "w", **text) as handle:
                yield handle
            self.fs.mv(temporary, self.path)
        except BaseException:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
            raise

    def write_directory(self, fill: Callable[[Path], None]) -> None:
        """Replace the folder with what ``fill`` writes into an empty local folder.

        Local: the folder is filled next to the target and renamed over it (the old one is
        readable until then). Elsewhere: filled in a local temp folder, uploaded next to
        the target, then moved over it.
        """
        if self.is_local:
            staging = staging_directory(self.path)
            try:
                fill(staging)
                replace_directory(staging, self.path)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return
        target = PurePosixPath(self.path)
        remote_staging = str(target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with tempfile.TemporaryDirectory(prefix="wmtp-upload-") as folder:
                local = Path(folder, target.name)
                local.mkdir()
                fill(local)
                self.fs.makedirs(str(target.parent), exist_ok=True)
                self.fs.put(str(local), remote_staging, recursive=True)
            if self.fs.exists(self.path):
                self.fs.rm(self.path, recursive=True)
            self.fs.mv(remote_staging, self.path, recursive=True)
        finally:
            if self.fs.exists(remote_staging):  # a failed upload or move leaves no staging folder
                self.fs.rm(remote_staging, recursive=True)

    def copy_folder_to(self, relative: str, destination: Path) -> None:
        """Copy the subfolder ``relative`` of this folder to the local ``destination``."""
        if self.is_local:
            shutil.copytree(Path(self.join(relative)), destination)
        else:
            self.fs.get(self.join(relative), str(destination), recursive=True)

    @contextmanager
    def local_directory(self) -> Iterator[Path]:
        """The folder as a local path: itself when local, else a temporary download."""
        if self.is_local:
            yield Path(self.path)
            return
        with tempfile.TemporaryDirectory(prefix="wmtp-download-") as folder:
            local = Path(folder, PurePosixPath(self.path).name)
            self.fs.get(self.path, str(local), recursive=True)
            yield local

    def local_copy(self) -> Path:
        """The folder as a local path that stays until the process exits (a download,
        removed at exit, when the folder is not local)."""
        if self.is_local:
            return Path(self.path)
        folder = tempfile.mkdtemp(prefix="wmtp-download-")
        atexit.register(shutil.rmtree, folder, True)
        local = Path(folder, PurePosixPath(self.path).name)
        self.fs.get(self.path, str(local), recursive=True)
        return local
