"""Results as JSON: benchmark files written crash-safely (benchmarks/results/*.json), and
figures made JSON-safe."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from weighted_mtp.runtime.files import atomic_file


def write_json(result: Any, path: str | Path) -> Path:
    """Write ``result`` as indented JSON through a temp file and rename."""
    with atomic_file(path) as handle:
        handle.write(json.dumps(result, indent=2) + "\n")
    return Path(path)


def plain_floats(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats for JSON; NaN becomes None (JSON has no NaN)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        number = float(value)
        out[key] = None if number != number else number
    return out
