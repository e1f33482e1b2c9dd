"""Bootstrap intervals over problems, single and paired.

Problems are the unit that varies when another set of problems is drawn, so the interval
resamples problems (with replacement), never samples within a problem. The paired form
resamples (problem, seed) units shared by two recipes and measures their difference on the
same units, which removes the problem-difficulty variance both recipes share
(docs/EVALUATION.md, "Metrics"; the paired form: "Comparing recipes").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000


def bootstrap_interval(values: Sequence[float], n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Args:
        values: One number per problem (e.g. its pass@k).
        n_resamples: Bootstrap resamples (>= 1000 for a 95% interval worth quoting).
        seed: Seed of the resampling, so a report is reproducible.
        level: Coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)``; ``(mean, mean)`` for a single problem.

    Raises:
        ValueError: On no values, a non-positive resample count or a level outside (0, 1).
    """
    data = _as_array(values, "values")
    _check(n_resamples, level)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(n_resamples, data.size))
    means = data[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_bootstrap_interval(treatment: Sequence[float], control: Sequence[float],
                              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                              level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean difference ``treatment − control`` over shared units, with its interval.

    Args:
        treatment: One number per unit (problem, or problem × seed).
        control: The same units, in the same order.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.
        level: Coverage of the interval.

    Returns:
        ``(mean difference, (low, high))``.

    Raises:
        ValueError: If the two sequences differ in length or are empty.
    """
    first, second = _as_array(treatment, "treatment"), _as_array(control, "control")
    if first.size != second.size:
        raise ValueError(f"paired bootstrap needs the same units in both: "
                         f"{first.size} treatment values vs {second.size} control values")
    difference = first - second
    return float(difference.mean()), bootstrap_interval(difference, n_resamples, seed, level)


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"{name}: expected a non-empty list of numbers, found shape {data.shape}")
    return data


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, found {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), found {level}")
