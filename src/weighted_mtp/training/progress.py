"""A tqdm progress bar over optimizer steps, shown only where a person is watching.

The bar is disabled on non-zero ranks, when stderr is not a terminal (CI, log files,
Kedro runs piped to a file), when ``WEIGHTED_MTP_PROGRESS=0`` (or tqdm's own
``TQDM_DISABLE=1``) is set, or when the caller passes ``enabled=False``.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

PROGRESS_ENV = "WEIGHTED_MTP_PROGRESS"


def progress_enabled(is_main: bool = True, enabled: bool | None = None) -> bool:
    """Decide whether to draw a bar.

    Args:
        is_main: False on non-zero ranks (they never draw).
        enabled: Explicit choice; ``None`` means "when stderr is a TTY and the
            environment does not say otherwise".

    Returns:
        True when the bar should be drawn.
    """
    if not is_main:
        return False
    if enabled is not None:
        return enabled
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}:
        return False
    return sys.stderr.isatty()


def make_progress(
    total: int,
    initial: int = 0,
    desc: str = "",
    is_main: bool = True,
    enabled: bool | None = None,
) -> tqdm:
    """Create the bar of one stage (a disabled tqdm is a cheap no-op with the same API).

    Args:
        total: Optimizer steps of the stage.
        initial: Steps already done (resume).
        desc: Label, e.g. ``"Stage 2"``.
        is_main: Rank-0 flag.
        enabled: Explicit on/off (see :func:`progress_enabled`).

    Returns:
        A tqdm instance; call ``update(1)`` per step and ``close()`` at the end.
    """
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        dynamic_ncols=True,
        leave=False,
        disable=not progress_enabled(is_main, enabled),
    )
