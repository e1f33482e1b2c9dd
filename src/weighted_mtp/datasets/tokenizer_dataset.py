"""Kedro dataset for a Hugging Face tokenizer folder."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.data.tokenizer import TOKENIZER_FILES, load_tokenizer
from weighted_mtp.datasets.storage import Storage

MODEL_TOKENIZER = "tokenizer"  # a model directory keeps its tokenizer here (docs/MODEL.md)


class TokenizerDataset(AbstractDataset[Any, Any]):
    """A tokenizer saved with ``save_pretrained``, loaded offline with ``AutoTokenizer``.

    ``path`` may also be a model directory with a ``tokenizer/`` subfolder (docs/MODEL.md), so a
    catalog entry can point at a real checkpoint's tokenizer. It may be local or any fsspec
    URL (``memory:///tok``, ``s3://bucket/tok``; only the tokenizer folder is downloaded).
    Saving writes a sibling temp folder and swaps it in, so a crash mid-save leaves the
    previous tokenizer readable.

    Example catalog entry::

        tokenizer:
          type: weighted_mtp.datasets.TokenizerDataset
          path: data/06_models/tokenizer
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Creates the dataset.

        Args:
            path: The tokenizer folder (or a model directory holding ``tokenizer/``).
            credentials: Passed to the filesystem, as in Kedro's datasets.
            fs_args: Further filesystem arguments.
            metadata: Free-form metadata for plugins (ignored by Kedro itself).
        """
        self._storage = Storage(path, credentials, fs_args)
        self._path = self._storage.path  # where kedro-mlflow's artifact wrapper looks
        self.metadata = metadata

    def load(self) -> Any:
        """Loads the tokenizer with ``AutoTokenizer.from_pretrained``, offline."""
        with self._folder().local_directory() as local:
            return load_tokenizer(local)

    def save(self, data: Any) -> None:
        """Saves ``data`` (a Hugging Face tokenizer) with ``save_pretrained``, atomically.

        Raises:
            ValueError: If ``path`` is a model directory (has ``tokenizer/``): replacing it
                with a tokenizer folder would delete the model.
        """
        if self._storage.isdir(MODEL_TOKENIZER):
            raise ValueError(
                f"{self._storage} is a model directory (it has tokenizer/); point the "
                f"TokenizerDataset at {self._storage.child(MODEL_TOKENIZER)} to save a tokenizer there"
            )
        self._storage.write_directory(lambda folder: data.save_pretrained(str(folder)))

    def _folder(self) -> Storage:
        """The folder that holds the tokenizer files: ``tokenizer/`` of a model directory, or ``path``."""
        return self._storage.child(MODEL_TOKENIZER) if self._storage.isdir(MODEL_TOKENIZER) else self._storage

    def _exists(self) -> bool:
        return any(self._storage.isfile(*where, name) for where in ((MODEL_TOKENIZER,), ())
                   for name in TOKENIZER_FILES)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._storage)}
