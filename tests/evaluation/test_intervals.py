"""Bootstrap intervals: coverage on a synthetic case, the paired difference, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from weighted_mtp.evaluation import bootstrap_interval, paired_bootstrap_interval


def test_coverage_of_a_known_mean_is_near_the_nominal_level() -> None:
    rng = np.random.default_rng(1)
    true_rate, problems, trials = 0.3, 200, 200
    covered = 0
    for trial in range(trials):
        values = (rng.random(problems) < true_rate).astype(float)
        low, high = bootstrap_interval(values, n_resamples=1000, seed=trial)
        covered += low <= true_rate <= high
    # Binomial(200, 0.95) lies in [180, 197] with probability > 0.999.
    assert 180 <= covered <= 197


def test_interval_is_seeded_and_brackets_the_mean() -> None:
    values = [0, 1, 1, 0, 1, 0, 0, 0, 1, 1]
    first = bootstrap_interval(values, seed=3)
    assert first == bootstrap_interval(values, seed=3)
    assert first[0] <= np.mean(values) <= first[1]
    assert bootstrap_interval([0.25], seed=0) == (0.25, 0.25)


def test_paired_difference_finds_a_known_shift() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.random(300)  # shared by both: what pairing cancels
    control = difficulty
    treatment = difficulty + 0.05 + rng.normal(0, 0.02, 300)
    mean, (low, high) = paired_bootstrap_interval(treatment, control, seed=0)
    assert mean == pytest.approx(0.05, abs=0.005)
    assert 0.04 < low < 0.05 < high < 0.06
    # Unpaired, the same data give a much wider interval for each mean.
    single_low, single_high = bootstrap_interval(treatment, seed=0)
    assert single_high - single_low > 5 * (high - low)


def test_no_effect_gives_an_interval_around_zero() -> None:
    rng = np.random.default_rng(5)
    control = (rng.random(400) < 0.4).astype(float)
    treatment = (rng.random(400) < 0.4).astype(float)
    _, (low, high) = paired_bootstrap_interval(treatment, control, seed=1)
    assert low < 0 < high


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="values: expected a non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="same units"):
        paired_bootstrap_interval([1, 0], [1])
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1.0], level=1.5)
