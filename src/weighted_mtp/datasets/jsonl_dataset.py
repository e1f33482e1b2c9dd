"""Kedro dataset for JSONL record files (one JSON object per line).

``pandas.JSONDataset`` would turn missing keys into NaN and ints into floats; records here are
plain dicts, so they are read and written as such (KEDRO_NOTES, catalog section).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.data.jsonl import dump_jsonl, parse_jsonl
from weighted_mtp.data.records import check_alpaca_record
from weighted_mtp.datasets.storage import Storage

# What a catalog entry's ``check`` names: a function that refuses an unfit record.
CHECKS = {"alpaca": check_alpaca_record}


class JSONLDataset(AbstractDataset[list[dict[str, Any]], list[dict[str, Any]]]):
    """A JSONL file as a list of dicts, on any fsspec filesystem (``file://``, ``memory://``,
    ``s3://``, or a plain local path).

    Loading reports a bad line with the file and line number; saving never leaves a partial
    file for the next run to read (a local file: temp file and rename; elsewhere: written
    next to it, then moved over it).

    Example catalog entry::

        train_records:
          type: weighted_mtp.datasets.JSONLDataset
          filepath: data/05_model_input/train.jsonl
          check: alpaca        # every line must be an Alpaca record with a boolean is_correct
    """

    def __init__(self, filepath: str, check: str | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Creates the dataset.

        Args:
            filepath: The JSONL file: a local path or a URL with a protocol fsspec knows
                (``memory:///data/train.jsonl``, ``s3://bucket/train.jsonl``).
            check: Optional name of the check each loaded record must pass (a key of
                ``CHECKS``: ``"alpaca"``); a failure names the file and line.
            credentials: Passed to the filesystem, as in Kedro's datasets.
            fs_args: Further filesystem arguments.
            metadata: Free-form metadata for plugins (ignored by Kedro itself).

        Raises:
            ValueError: ``check`` is not a key of ``CHECKS``, or ``filepath`` is a
                ``memory://``/``file://`` URL with a host part (see ``Storage``).
        """
        if check is not None and check not in CHECKS:
            raise ValueError(f"check: unknown {check!r}; expected one of {sorted(CHECKS)}")
        self._storage = Storage(filepath, credentials, fs_args)
        self._filepath = PurePosixPath(self._storage.path)  # where kedro-mlflow's artifact wrapper looks
        self._check = check
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        """Reads the records (see ``weighted_mtp.data.read_jsonl``), checking each one."""
        with self._storage.open_read() as handle:
            return parse_jsonl(handle, str(self._storage), CHECKS.get(self._check))

    def save(self, data: list[dict[str, Any]]) -> None:
        """Writes the records (UTF-8, one object per line), creating parent directories."""
        with self._storage.write_file(encoding="utf-8", newline="\n") as handle:
            dump_jsonl(handle, data)

    def _exists(self) -> bool:
        return self._storage.isfile()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._storage), "check": self._check}
