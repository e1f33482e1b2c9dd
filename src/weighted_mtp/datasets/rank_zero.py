"""A catalog entry seen from a rank other than 0 under torchrun: it reads, it never writes.

Every rank runs every node, so every rank would save every output: N processes writing
the same checkpoint directory or JSON file at once. On ranks > 0 the project hook wraps
each persisted dataset in :class:`ReadOnlyDataset`: ``save`` does nothing, ``load`` reads
the file rank 0 wrote (the hook makes every rank wait at a barrier after each such save,
so the file is complete before anyone reads it).
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.io import AbstractDataset


class ReadOnlyDataset(AbstractDataset[Any, Any]):
    """Delegates loading to ``dataset`` and drops saves.

    Args:
        dataset: The catalog's dataset (a file, a directory, an MLflow artifact).
    """

    def __init__(self, dataset: AbstractDataset) -> None:
        self._dataset = dataset

    @property
    def wrapped(self) -> AbstractDataset:
        """The dataset rank 0 writes through."""
        return self._dataset

    def load(self) -> Any:
        """What rank 0 saved."""
        return self._dataset.load()

    def save(self, data: Any) -> None:
        """Nothing: rank 0 writes the file."""

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"read_only": True, "dataset": str(self._dataset)}


def persisted_names(catalog: Any) -> frozenset[str]:
    """Names of the catalog's entries that live in files (anything but a ``MemoryDataset``).

    Materialises the catalog's lazy entries; the set is the same on every rank.
    """
    from kedro.io import MemoryDataset

    return frozenset(name for name in catalog.keys() if not isinstance(catalog.get(name), MemoryDataset))


def make_read_only(catalog: Any, names: frozenset[str]) -> None:
    """Wrap each of ``names`` in :class:`ReadOnlyDataset`, in place.

    Kedro warns when an entry is replaced; that warning would only describe this swap, so
    it is silenced for the duration.
    """
    catalog_logger = logging.getLogger("kedro.io.data_catalog")
    previous = catalog_logger.level
    catalog_logger.setLevel(logging.ERROR)
    try:
        for name in sorted(names):
            dataset = catalog.get(name)
            if not isinstance(dataset, ReadOnlyDataset):
                catalog[name] = ReadOnlyDataset(dataset)
    finally:
        catalog_logger.setLevel(previous)
