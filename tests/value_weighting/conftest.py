"""Fixtures for the value-weighting tests: the DESIGN §4 worked example and ragged batches."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

RaggedBatch = dict[str, torch.Tensor]


@pytest.fixture
def worked_example() -> dict[str, torch.Tensor | float]:
    """DESIGN §4 worked example (γ = 1, initial_value 0.5), in float64."""
    f64 = torch.float64
    return {
        "values": torch.tensor(
            [[0.50, 0.40, 0.60, 0.55, 0.80, 0.00], [0.50, 0.45, 0.30, 0.35, 0.20, 0.10]],
            dtype=f64,
        ),
        "rewards": torch.tensor([1.0, 0.0], dtype=f64),
        "mask": torch.tensor([[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]], dtype=f64),
        "delta": torch.tensor(
            [[0, -0.10, 0.20, -0.05, 0.45, 0], [0, 0, -0.15, 0.05, -0.15, -0.20]], dtype=f64
        ),
        "mean": 0.00625,
        "std": 0.221097,
        "weights": torch.tensor(
            [
                [0, 0.586283, 2.647669, 0.753760, 5.0, 0],
                [0, 0, 0.456017, 1.245906, 0.456017, 0.354695],
            ],
            dtype=f64,
        ),
        "gae": torch.tensor(
            [
                [0, 0.430694, 0.558625, 0.3775, 0.45, 0],
                [0, 0, -0.40935, -0.273, -0.34, -0.20],
            ],
            dtype=f64,
        ),
    }


def ragged_batch(
    batch: int, seq: int, seed: int, dtype: torch.dtype = torch.float64
) -> RaggedBatch:
    """Random batch with contiguous responses of random start and length.

    Row 0 has no response, row 1 a one-token response, row 2 a response starting at 0 and
    row 3 a response running to the last position (when ``batch`` allows); the rest are
    random. Padding values are NaN, so any leak from padding shows up in a comparison.
    """
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(batch, seq, generator=gen, dtype=dtype)
    rewards = (torch.rand(batch, generator=gen) < 0.5).to(dtype)
    truncated = torch.rand(batch, generator=gen) < 0.3
    mask = torch.zeros(batch, seq, dtype=dtype)
    for b in range(batch):
        start = int(torch.randint(0, seq, (1,), generator=gen))
        end = int(torch.randint(start, seq, (1,), generator=gen))
        special = {0: None, 1: (start, start), 2: (0, end), 3: (start, seq - 1)}
        span = special.get(b, (start, end))
        if span is not None:
            mask[b, span[0] : span[1] + 1] = 1.0
            values[b, span[1] + 1 :] = float("nan")
        else:
            values[b, :] = torch.where(torch.arange(seq) % 2 == 0, values[b], float("nan"))
    return {"values": values, "rewards": rewards, "mask": mask, "truncated": truncated}


@pytest.fixture
def make_ragged_batch() -> Callable[..., RaggedBatch]:
    """Factory for :func:`ragged_batch`."""
    return ragged_batch
