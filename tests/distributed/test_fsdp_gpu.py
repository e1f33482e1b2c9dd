"""FSDP and DDP on GPUs with NCCL, bf16 compute: needs two CUDA devices, skipped otherwise.

The CPU tests (test_collectives.py) check FSDP's arithmetic with gloo; this one checks
what only GPUs have: NCCL, ``prepare_model``'s CUDA path (broadcast through the GPU, then
``fully_shard`` moving the shards there), bf16 mixed precision, and a sharded (DCP)
checkpoint and ``load_pretrained_sharded`` with the shards on the GPUs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from dist_helpers import free_port, load_world, make_world, torchrun_env

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"),
]


def _worker(rank: int, world: str, out: str, port: int) -> None:
    from weighted_mtp.data import MTPCollator, TokenizedDataset, resolve_pad_token_id
    from weighted_mtp.runtime import distributed
    from weighted_mtp.runtime.parallel import compute_dtype, is_sharded, model_state, prepare_model
    from weighted_mtp.runtime.sharded_checkpoint import load_pretrained_sharded, load_sharded, save_sharded
    from weighted_mtp.training.schedule import build_optimizer, build_scheduler
    from weighted_mtp.training.objective import objective_for, set_trainable
    from weighted_mtp.training.step import train_step, trainable_parameters

    os.environ.update(torchrun_env(rank, 2, port))
    assert distributed.init_distributed("auto", timeout_minutes=2, device_spec="auto")
    try:
        device = torch.device("cuda", torch.cuda.current_device())
        results = {"device": device.index}
        for strategy in ("ddp", "fsdp"):
            model, tokenizer, rows, config = load_world(Path(world))
            set_trainable(model, trunk=True, heads=True, value_head=True)
            model = model if strategy == "fsdp" else model.to(device)
            model = prepare_model(model, strategy, device, "bfloat16")
            dataset = TokenizedDataset(rows, tokenizer, 64, drop_unlabelled=True)
            batch = MTPCollator(resolve_pad_token_id(tokenizer))([dataset[i] for i in range(3 * rank, 3 * rank + 3)])
            optimizer = build_optimizer(trainable_parameters(model), 1e-3, 0.0)
            scheduler = build_scheduler(optimizer, 2, 0.0)
            figures = [train_step(model, [batch], objective_for("stage2", config.training), optimizer, scheduler,
                                  max_grad_norm=1.0, device=device, step=i + 1) for i in range(2)]
            results[strategy] = {"sharded": is_sharded(model), "loss": figures[-1]["loss"],
                                 "state": {k: v.float().cpu() for k, v in model_state(model).items()}}
        # the FSDP model of the last round, saved as shards and loaded into a fresh sharded model
        folder = save_sharded(Path(out) / "checkpoint_stage2_last.dcp", model, optimizer, {"global_step": 2})
        fresh = load_pretrained_sharded(Path(world) / "model", param_dtype=compute_dtype("bfloat16", device))
        load_sharded(folder, fresh)
        results["dcp_equal"] = all(torch.equal(a.cpu(), b.cpu()) for a, b in
                                   zip(model_state(model).values(), model_state(fresh).values()))
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.mark.timeout(300)
def test_fsdp_and_ddp_on_two_gpus(tmp_path):
    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    mp.spawn(_worker, args=(str(world), str(tmp_path), free_port()), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["device"] for r in ranks] == [0, 1]  # each rank on its own GPU (LOCAL_RANK)
    for strategy in ("ddp", "fsdp"):
        assert ranks[0][strategy]["sharded"] == (strategy == "fsdp")
        assert math.isfinite(ranks[0][strategy]["loss"])
        for key, value in ranks[0][strategy]["state"].items():
            assert torch.equal(value, ranks[1][strategy]["state"][key]), (strategy, key)
    model, _, _, _ = load_world(world)
    assert set(ranks[0]["fsdp"]["state"]) == set(model.state_dict())
    assert all(rank["dcp_equal"] for rank in ranks)
