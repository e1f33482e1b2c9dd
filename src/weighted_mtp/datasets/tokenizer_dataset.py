"""Kedro dataset for a Hugging Face tokenizer folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.data.tokenizer import load_tokenizer, resolve_tokenizer_dir
from weighted_mtp.runtime.files import replace_directory, staging_directory


class TokenizerDataset(AbstractDataset[Any, Any]):
    """A tokenizer saved with ``save_pretrained``, loaded offline with ``AutoTokenizer``.

    ``path`` may also be a model directory with a ``tokenizer/`` subfolder (docs/MODEL.md), so a
    catalog entry can point at a real checkpoint's tokenizer. Saving writes a sibling temp
    folder and swaps it in, so a crash mid-save leaves the previous tokenizer readable.

    Example catalog entry::

        tokenizer:
          type: weighted_mtp.datasets.TokenizerDataset
          path: data/06_models/tokenizer
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        """Creates the dataset.

        Args:
            path: The tokenizer folder (or a model directory holding ``tokenizer/``).
            metadata: Free-form metadata for plugins (ignored by Kedro itself).
        """
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Any:
        """Loads the tokenizer with ``AutoTokenizer.from_pretrained``, offline."""
        return load_tokenizer(self._path)

    def save(self, data: Any) -> None:
        """Saves ``data`` (a Hugging Face tokenizer) with ``save_pretrained``, atomically.

        Raises:
            ValueError: If ``path`` is a model directory (has ``tokenizer/``): replacing it
                with a tokenizer folder would delete the model.
        """
        if (self._path / "tokenizer").is_dir():
            raise ValueError(
                f"{self._path} is a model directory (it has tokenizer/); point the "
                f"TokenizerDataset at {self._path / 'tokenizer'} to save a tokenizer there"
            )
        staging = staging_directory(self._path)
        try:
            data.save_pretrained(str(staging))
            replace_directory(staging, self._path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _exists(self) -> bool:
        try:
            resolve_tokenizer_dir(self._path)
        except FileNotFoundError:
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
