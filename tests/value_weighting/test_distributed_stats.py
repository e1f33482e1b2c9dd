"""Statistics are summed over ranks: two gloo processes reproduce the single-process numbers.

Each rank holds half of the rows; the training's whitening statistics (``td_weights`` sums
them over ranks, ``build_weights`` itself is pure), EMA statistics and explained variance
must come out as if one process had seen the whole batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from weighted_mtp.training.losses import ExplainedVarianceAccumulator, value_state_mask
from weighted_mtp.config.schema import Stage2Config
from weighted_mtp.training.step import td_weights
from weighted_mtp.value_weighting import TDStatsEMA, compute_td_errors

WORLD_SIZE = 2


def _inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    values = torch.rand(4, 12, generator=gen, dtype=torch.float64)
    mask = torch.zeros(4, 12, dtype=torch.float64)
    for row, (start, end) in enumerate([(2, 9), (0, 3), (5, 11), (1, 1)]):
        mask[row, start : end + 1] = 1.0
    return {"values": values, "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0]).double(), "mask": mask}


def _compute(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor) -> dict:
    delta = compute_td_errors(values, rewards, mask)
    ema = TDStatsEMA(momentum=0.9, warmup_steps=1)
    ema_stats = [*ema.update(delta, mask), *ema.update(delta * 2.0, mask)]
    accumulator = ExplainedVarianceAccumulator()
    accumulator.update(values, rewards, value_state_mask(mask))
    return {
        "weights": td_weights(values, {"rewards": rewards, "loss_mask": mask, "truncated": None},
                              Stage2Config(beta=0.9, gamma=1.0, td_lambda=0.0, initial_value=0.5), mask),
        "ema": ema_stats,
        "explained_variance": accumulator.compute(),
    }


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        inputs = _inputs()
        rows = slice(2 * rank, 2 * rank + 2)
        result = _compute(inputs["values"][rows], inputs["rewards"][rows], inputs["mask"][rows])
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_ranks_match_one_process(tmp_path):
    mp.spawn(
        _worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True
    )
    expected = _compute(**_inputs())
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    torch.testing.assert_close(torch.cat([r["weights"] for r in ranks]), expected["weights"])
    for result in ranks:
        assert result["ema"] == pytest.approx(expected["ema"])
        assert result["explained_variance"] == pytest.approx(expected["explained_variance"])
