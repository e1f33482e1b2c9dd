"""Kedro dataset for a model directory in the docs/MODEL.md layout (Meta keys + value head)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from weighted_mtp.runtime.files import replace_directory, staging_directory


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
    node that uses it decides the device.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Any:
        from weighted_mtp.models import MetaLlamaMTPAdapter

        return MetaLlamaMTPAdapter.from_pretrained(self._path, device="cpu")

    def save(self, data: Any) -> None:
        bundle = data if isinstance(data, ModelBundle) else ModelBundle(adapter=data)
        staging = staging_directory(self._path)
        try:
            bundle.adapter.save_pretrained(staging)
            if bundle.tokenizer is not None:
                bundle.tokenizer.save_pretrained(str(staging / "tokenizer"))
            elif (self._path / "tokenizer").is_dir():
                shutil.copytree(self._path / "tokenizer", staging / "tokenizer")
            replace_directory(staging, self._path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _exists(self) -> bool:
        return (self._path / "metadata.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}



class ModelDirectoryPath(AbstractDataset[Any, Path]):
    """The path of a model directory, for nodes that load it themselves (read-only).

    Used transcoded with :class:`ModelDirectoryDataset` (``best_model@model`` /
    ``best_model@path``): Kedro orders the reader after the node that writes the model,
    while the reader decides whether and where to load it (evaluation may be pointed at
    another directory, and loads onto its own device), so a missing best model is the
    reader's error to explain, not the catalog's.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        return self._path

    def save(self, data: Any) -> None:
        raise NotImplementedError(f"{self._path}: a ModelDirectoryPath is read-only; save the model "
                                  "through its ModelDirectoryDataset entry (…@model)")

    def _exists(self) -> bool:
        return (self._path / "metadata.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
