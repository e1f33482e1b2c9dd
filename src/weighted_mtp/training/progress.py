"""Progress of long work: a tqdm bar where a person watches, log lines with an ETA elsewhere.

On a terminal the bar is drawn and log records are routed through it
(``logging_redirect_tqdm``), so the two never interleave. Where stderr is not a terminal —
CI, ``nohup``, a cluster job's log file — a bar would be noise, so a line is logged every
twentieth of the work instead (at most one per ``min_interval`` seconds, and the last):
``[Stage 2] 40/200 steps (20%), 1.32 s/step, ETA 3 min 31 s``.
Nothing is shown on non-zero ranks, with ``WMTP_PROGRESS=0`` (or tqdm's ``TQDM_DISABLE=1``),
or when the caller passes ``enabled=False``; ``enabled=True`` forces the bar.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

PROGRESS_ENV = "WMTP_PROGRESS"
_LEGACY_ENV = "WEIGHTED_MTP_PROGRESS"
BAR, LOG, OFF = "bar", "log", "off"

log = logging.getLogger("weighted_mtp.progress")


def progress_mode(is_main: bool = True, enabled: bool | None = None) -> str:
    """``"bar"``, ``"log"`` or ``"off"`` (see the module docstring)."""
    if not is_main or enabled is False:
        return OFF
    for name in (PROGRESS_ENV, _LEGACY_ENV):
        if os.environ.get(name, "").strip().lower() in {"0", "false", "no", "off"}:
            return OFF
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}:
        return OFF
    return BAR if enabled or sys.stderr.isatty() else LOG


def progress_enabled(is_main: bool = True, enabled: bool | None = None) -> bool:
    """Whether a bar is drawn (a terminal, or forced)."""
    return progress_mode(is_main, enabled) == BAR


class LogProgress:
    """The bar's API (``update``, ``set_postfix``, ``close``) as periodic log lines."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "step", lines: int = 20,
                 min_interval: float = 10.0) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.every = max(1, math.ceil(max(total - initial, 1) / lines))
        self.min_interval = min_interval
        self._start, self._start_n = time.perf_counter(), initial
        self._postfix = ""
        self._next, self._last_line = initial + self.every, -math.inf

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        due = self.n >= self._next and now - self._last_line >= self.min_interval
        if due or self.n >= self.total:
            self._next, self._last_line = self.n + self.every, now
            log.info("%s", self.line())

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self._postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def line(self) -> str:
        """``[desc] n/total unit (p%), s/unit, ETA …[, postfix]``."""
        done = self.n - self._start_n
        seconds = time.perf_counter() - self._start
        per = seconds / done if done > 0 else math.nan
        eta = per * (self.total - self.n) if done > 0 else math.nan
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = (f"[{self.desc}] {self.n}/{self.total} {self.unit}s{share}, {per:.2f} s/{self.unit}, "
                f"ETA {format_duration(eta)}")
        return f"{text}, {self._postfix}" if self._postfix else text

    def close(self) -> None:
        pass


def make_progress(total: int, initial: int = 0, desc: str = "", is_main: bool = True,
                  enabled: bool | None = None, unit: str = "step") -> Any:
    """A tqdm bar, a :class:`LogProgress`, or a disabled tqdm (a no-op with the same API).

    Args:
        total: Units of work (optimizer steps, prompts, programs …).
        initial: Units already done (resume).
        desc: Label, e.g. ``"Stage 2"``.
        is_main: Rank-0 flag.
        enabled: Explicit on/off (see :func:`progress_mode`).
        unit: What one update counts.
    """
    mode = progress_mode(is_main, enabled)
    if mode == LOG:
        return LogProgress(total, initial, desc, unit)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=False,
                disable=mode == OFF)


@contextmanager
def progress(total: int, initial: int = 0, desc: str = "", is_main: bool = True, enabled: bool | None = None,
             unit: str = "step") -> Iterator[Any]:
    """:func:`make_progress` as a context: closed at the end, and while a bar is drawn,
    log records go through it instead of breaking its line."""
    bar = make_progress(total, initial, desc, is_main, enabled, unit)
    try:
        if isinstance(bar, tqdm) and not bar.disable:
            with logging_redirect_tqdm():
                yield bar
        else:
            yield bar
    finally:
        bar.close()


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 31 s"``, ``"2 h 05 min"``; ``"?"`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
