"""Token-weight and TD statistics of a step, on hand-computed values."""

from __future__ import annotations

import pytest
import torch

from weighted_mtp.training.objective import Objective
from weighted_mtp.training.sums import LossSums, summarize

WEIGHTS_ONLY = Objective("stage2", train_ce=False, train_value=False, report_value=False, value_coef=0.0)


def test_effective_sample_size_and_td_moments():
    sums = LossSums(n_heads=1)
    valid = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    sums.add_weights(torch.tensor([[1.0, 1.0, 2.0, 0.5]]), valid, clip=(0.1, 5.0))
    sums.add_td(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), valid)
    figures = summarize(sums, WEIGHTS_ONLY)
    # Σw = 4, Σw² = 6 over n = 3 tokens: ESS = 16 / 6 = 2.67 tokens = 0.889 of them.
    assert figures["weights/ess"] == pytest.approx(16 / 18)
    assert figures["weights/mean"] == pytest.approx(4 / 3)
    assert figures["td/mean"] == pytest.approx(2.0) and figures["td/std"] == pytest.approx(1.0)


def test_uniform_weights_have_full_sample_size_and_no_td_figures_without_td():
    sums = LossSums(n_heads=1)
    sums.add_weights(torch.ones(2, 3), torch.ones(2, 3), clip=None)
    figures = summarize(sums, WEIGHTS_ONLY)
    assert figures["weights/ess"] == pytest.approx(1.0)
    assert not any(key.startswith("td/") for key in figures)


def test_all_zero_weights_give_zero_sample_size():
    sums = LossSums(n_heads=1)
    sums.add_weights(torch.zeros(1, 4), torch.ones(1, 4), clip=None)
    assert summarize(sums, WEIGHTS_ONLY)["weights/ess"] == 0.0
