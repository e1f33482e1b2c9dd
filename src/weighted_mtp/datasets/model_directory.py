"""Kedro dataset for a model directory in the docs/MODEL.md layout (Meta keys + value head)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.datasets.storage import Storage

METADATA_FILE = "metadata.json"  # models.checkpoint_io.METADATA_FILE (not imported: it would load torch)
TOKENIZER_FOLDER = "tokenizer"  # models.checkpoint_io.TOKENIZER_DIR


@dataclass
class ModelBundle:
    """A model and the tokenizer that goes in its ``tokenizer/`` folder."""

    adapter: Any
    tokenizer: Any = None


class ModelDirectoryDataset(AbstractDataset[Any, Any]):
    """Loads a model directory with ``from_pretrained``; saves one atomically.

    ``save`` writes the whole directory (weights, metadata, and ``tokenizer/`` when a
    :class:`ModelBundle` carries one) next to the target, then swaps it in, so a crash
    mid-save leaves the previous model readable. ``load`` returns the adapter on CPU; the
    node that uses it decides the device. ``path`` may be local or any fsspec URL
    (``memory:///models/best``, ``s3://bucket/models/best``): the directory is then
    written locally and uploaded, or downloaded and loaded.
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._storage = Storage(path, credentials, fs_args)
        self._path = self._storage.path  # where kedro-mlflow's artifact wrapper looks
        self.metadata = metadata

    def load(self) -> Any:
        from weighted_mtp.models import MetaLlamaMTPAdapter

        with self._storage.local_directory() as folder:
            return MetaLlamaMTPAdapter.from_pretrained(folder, device="cpu")

    def save(self, data: Any) -> None:
        bundle = data if isinstance(data, ModelBundle) else ModelBundle(adapter=data)

        def fill(folder: Path) -> None:
            bundle.adapter.save_pretrained(folder)
            if bundle.tokenizer is not None:
                bundle.tokenizer.save_pretrained(str(folder / TOKENIZER_FOLDER))
            elif self._storage.isdir(TOKENIZER_FOLDER):  # keep the tokenizer the folder had
                self._storage.copy_folder_to(TOKENIZER_FOLDER, folder / TOKENIZER_FOLDER)

        self._storage.write_directory(fill)

    def local_directory(self) -> AbstractContextManager[Path]:
        """The saved directory as a local folder (a temporary download when it is not local),
        e.g. to log it as an MLflow model."""
        return self._storage.local_directory()

    def _exists(self) -> bool:
        return self._storage.isfile(METADATA_FILE)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._storage)}


class ModelDirectoryPath(AbstractDataset[Any, Path]):
    """The path of a model directory, for nodes that load it themselves (read-only).

    Used transcoded with :class:`ModelDirectoryDataset` (``best_model@model`` /
    ``best_model@path``): Kedro orders the reader after the node that writes the model,
    while the reader decides whether and where to load it (evaluation may be pointed at
    another directory, and loads onto its own device), so a missing best model is the
    reader's error to explain, not the catalog's. A directory that is not local is
    downloaded to a temporary folder (removed when the process exits) and that path is
    returned.
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._storage = Storage(path, credentials, fs_args)
        self._path = self._storage.path
        self.metadata = metadata

    def load(self) -> Path:
        if self._storage.is_local or not self._exists():
            return Path(self._storage.path)  # a missing model is the reader's to explain
        return self._storage.local_copy()

    def save(self, data: Any) -> None:
        raise NotImplementedError(f"{self._storage}: a ModelDirectoryPath is read-only; save the model "
                                  "through its ModelDirectoryDataset entry (…@model)")

    def _exists(self) -> bool:
        return self._storage.isfile(METADATA_FILE)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._storage)}
