"""The pass@k estimator against brute-force enumeration of k-subsets."""

from __future__ import annotations

import itertools
import math

import pytest

from weighted_mtp.evaluation import pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """Share of k-subsets of n samples (c of them passing) that hold a passing sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_matches_enumeration_of_subsets(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_closed_form_and_edge_values() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 6, 5) == 1.0  # fewer than k failures: some pass in every k-subset
    assert pass_at_k(20, 2, 10) == pytest.approx(1 - math.comb(18, 10) / math.comb(20, 10))


def test_stable_where_binomials_overflow_floats() -> None:
    # C(2000, 1000) overflows a float; the product form does not.
    value = pass_at_k(2000, 3, 1000)
    assert value == pytest.approx(1 - math.comb(1997, 1000) / math.comb(2000, 1000), rel=1e-9)


@pytest.mark.parametrize("n, c, k", [(5, 1, 6), (5, 1, 0), (5, 6, 1), (0, 0, 1)])
def test_inconsistent_counts_are_refused(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)
