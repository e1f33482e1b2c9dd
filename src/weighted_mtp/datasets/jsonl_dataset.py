"""Kedro dataset for JSONL record files (one JSON object per line).

``pandas.JSONDataset`` would turn missing keys into NaN and ints into floats; records here are
plain dicts, so they are read and written as such (KEDRO_NOTES, catalog section).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.data.jsonl import read_jsonl, write_jsonl
from weighted_mtp.data.records import check_alpaca_record

# What a catalog entry's ``check`` names: a function that refuses an unfit record.
CHECKS = {"alpaca": check_alpaca_record}


class JSONLDataset(AbstractDataset[list[dict[str, Any]], list[dict[str, Any]]]):
    """A local JSONL file as a list of dicts.

    Loading reports a bad line with the file and line number; saving is atomic (temp file and
    rename), so an interrupted run never leaves a partial file for the next run to read.

    Example catalog entry::

        train_records:
          type: weighted_mtp.datasets.JSONLDataset
          filepath: data/05_model_input/train.jsonl
          check: alpaca        # every line must be an Alpaca record with a boolean is_correct
    """

    def __init__(self, filepath: str, check: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """Creates the dataset.

        Args:
            filepath: Local path of the JSONL file.
            check: Optional name of the check each loaded record must pass (a key of
                ``CHECKS``: ``"alpaca"``); a failure names the file and line.
            metadata: Free-form metadata for plugins (ignored by Kedro itself).

        Raises:
            ValueError: ``check`` is not a key of ``CHECKS``.
        """
        if check is not None and check not in CHECKS:
            raise ValueError(f"check: unknown {check!r}; expected one of {sorted(CHECKS)}")
        self._filepath = Path(filepath)
        self._check = check
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        """Reads the records (see ``weighted_mtp.data.read_jsonl``), checking each one."""
        return read_jsonl(self._filepath, CHECKS.get(self._check))

    def save(self, data: list[dict[str, Any]]) -> None:
        """Writes the records atomically, creating parent directories."""
        write_jsonl(self._filepath, data)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "check": self._check}
