"""The task families of the embedded code dataset, one module per group.

Importing this package registers every family; `FAMILIES` lists them in a stable order
(by name) so generation does not depend on import order.
"""

from __future__ import annotations

from . import arithmetic, codes, grids, lists, primes, sequences, text  # noqa: F401  (registration)
from .base import MUTATION_KINDS, REGISTRY, Draft, Family

FAMILIES: tuple[Family, ...] = tuple(REGISTRY[name] for name in sorted(REGISTRY))

__all__ = ["FAMILIES", "MUTATION_KINDS", "Draft", "Family"]
