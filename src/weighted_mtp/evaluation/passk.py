"""The unbiased pass@k estimator of Chen et al. (2021), in a numerically stable form.

Sampling ``n`` programs and counting the ``c`` that pass estimates the chance that at least
one of ``k`` samples passes without the bias of "did any of the first k pass": the estimate
is 1 − C(n−c, k)/C(n, k). The binomials overflow for large n, so the ratio is computed as a
product of ``n`` small factors (docs/EVALUATION.md, "Metrics").
"""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` of the ``n`` samples passes.

    Args:
        n: Samples drawn for the problem.
        c: Samples that passed every test, ``0 <= c <= n``.
        k: Samples the metric allows, ``1 <= k <= n``.

    Returns:
        ``1 − C(n−c, k)/C(n, k)``; 1.0 when fewer than ``k`` samples failed.

    Raises:
        ValueError: If the counts are inconsistent (``k > n`` names both values).
    """
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs n >= 1 and 0 <= c <= n, found n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, found k={k} with n={n} samples")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
        miss *= 1.0 - k / i
    return 1.0 - miss


def per_problem_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> list[float]:
    """pass@k of each problem from its ``(n, c)`` counts, in input order."""
    return [pass_at_k(n, c, k) for n, c in counts]
