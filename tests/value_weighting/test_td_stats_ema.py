"""TDStatsEMA: warm-up average, EMA afterwards, checkpoint round trip."""

from __future__ import annotations

import logging
import math
import statistics

import pytest
import torch

from weighted_mtp.value_weighting import TDStatsEMA


def _batch(values: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([values + [123.0]], dtype=torch.float64)  # a masked-out outlier
    mask = torch.tensor([[1.0] * len(values) + [0.0]])
    return x, mask


BATCHES = [[0.0, 1.0, 2.0], [1.0, 3.0], [-1.0, 0.0, 4.0, 5.0], [2.0, 2.5]]


def test_first_update_returns_the_batch_statistics():
    ema = TDStatsEMA(momentum=0.99, warmup_steps=0)
    mean, std = ema.update(*_batch(BATCHES[0]))
    assert mean == pytest.approx(1.0)
    assert std == pytest.approx(1.0)  # unbiased std of 0, 1, 2


def test_warm_up_is_the_plain_average_then_ema_takes_over():
    ema = TDStatsEMA(momentum=0.9, warmup_steps=3)
    for values in BATCHES[:3]:
        mean, std = ema.update(*_batch(values))
    means = [statistics.mean(v) for v in BATCHES[:3]]
    variances = [statistics.variance(v) for v in BATCHES[:3]]
    assert mean == pytest.approx(statistics.mean(means))
    assert std == pytest.approx(math.sqrt(statistics.mean(variances)))
    mean, std = ema.update(*_batch(BATCHES[3]))
    assert mean == pytest.approx(0.9 * statistics.mean(means) + 0.1 * 2.25)
    expected_var = 0.9 * statistics.mean(variances) + 0.1 * statistics.variance(BATCHES[3])
    assert std == pytest.approx(math.sqrt(expected_var))
    assert ema.steps == 4


def test_batches_with_fewer_than_two_tokens_are_skipped():
    ema = TDStatsEMA()
    assert ema.update(*_batch([5.0])) == (0.0, 1.0)
    ema.update(*_batch(BATCHES[0]))
    before = ema.state_dict()
    assert ema.update(*_batch([7.0])) == (before["mean"], math.sqrt(before["var"]))
    assert ema.steps == 1


def test_state_dict_round_trip_uses_plain_python_numbers():
    ema = TDStatsEMA(momentum=0.95, warmup_steps=2)
    for values in BATCHES:
        ema.update(*_batch(values))
    state = ema.state_dict()
    assert all(isinstance(v, (int, float)) for v in state.values())
    restored = TDStatsEMA(momentum=0.95, warmup_steps=2)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    x, mask = _batch([0.5, 1.5, 9.0])
    assert restored.update(x, mask) == ema.update(x, mask)


def test_load_keeps_the_config_and_warns_when_it_differs(caplog):
    ema = TDStatsEMA(momentum=0.9, warmup_steps=1)
    ema.update(*_batch(BATCHES[0]))
    other = TDStatsEMA(momentum=0.5, warmup_steps=1)
    with caplog.at_level(logging.WARNING):
        other.load_state_dict(ema.state_dict())
    assert "momentum" in caplog.text
    assert other.momentum == 0.5 and other.mean == ema.mean


def test_bad_state_and_arguments_raise():
    with pytest.raises(ValueError, match="missing keys"):
        TDStatsEMA().load_state_dict({"mean": 0.0})
    with pytest.raises(ValueError, match="momentum"):
        TDStatsEMA(momentum=1.0)
    with pytest.raises(ValueError, match="mask of shape"):
        TDStatsEMA().update(torch.zeros(2, 3), torch.ones(2, 2))
