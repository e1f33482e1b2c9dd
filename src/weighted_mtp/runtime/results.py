"""Benchmark results as JSON, written crash-safely (benchmarks/results/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from weighted_mtp.runtime.files import atomic_file


def write_json(result: Any, path: str | Path) -> Path:
    """Write ``result`` as indented JSON through a temp file and rename."""
    with atomic_file(path) as handle:
        handle.write(json.dumps(result, indent=2) + "\n")
    return Path(path)
