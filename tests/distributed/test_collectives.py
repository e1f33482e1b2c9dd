"""Two real gloo ranks against one process: validation, gradients, updates, FSDP.

One ``torch.multiprocessing.spawn`` of two workers (the honest choice for checking the
collectives themselves; the pipeline under ``torchrun`` is tested separately) runs every
scenario and saves what it saw; the tests compare that with one process on the same data:

- validation of every stage on 2 unequal shards (13 rows, 3 per batch per rank) equals
  one process with 6 per batch, TD-weighted figures included;
- the averaged gradient equals the mean of the two ranks' single-process gradients;
- after two steps both ranks hold identical parameters although rank 1 started from
  perturbed ones, and FSDP (``prepare_model``'s sharded path, here on CPU with gloo) ends
  where the replicated path does;
- the saved model and optimizer state (full, gathered from FSDP's shards) resumes exactly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from dist_helpers import free_port, load_world, make_world, torchrun_env

from weighted_mtp.data import IGNORE_INDEX, MTPCollator, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.runtime import distributed
from weighted_mtp.runtime.parallel import (
    is_sharded,
    load_model_state,
    load_optimizer_state,
    model_state,
    optimizer_state,
    prepare_model,
    shard_model,
    sync_gradients,
)
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.schedule import build_optimizer, build_scheduler
from weighted_mtp.training.objective import objective_for, set_trainable
from weighted_mtp.training.step import accumulate_batch, train_step, trainable_parameters
from weighted_mtp.training.sums import LossSums, summarize
from weighted_mtp.training.trainer import build_loader

pytestmark = pytest.mark.slow

WORLD = 2
STAGES = ("pretrain", "stage1", "stage2")
CPU = torch.device("cpu")


def _dataset(world: Path) -> tuple[Any, TokenizedDataset, Any, int]:
    model, tokenizer, rows, config = load_world(world)
    dataset = TokenizedDataset(rows, tokenizer, config.dataset.max_length, drop_unlabelled=True)
    return model, dataset, config, resolve_pad_token_id(tokenizer)


def _evaluate(world: Path, batch_size: int) -> dict[str, dict[str, float]]:
    """Every stage's validation figures, with this process's shard of the rows."""
    model, dataset, config, pad = _dataset(world)
    loader, _ = build_loader(dataset, batch_size, pad, seed=0, shuffle=False, evaluation=True)
    return {stage: evaluate_stage(model, loader, objective_for(stage, config.training, config.project.recipe), CPU)
            for stage in STAGES}


def _step_batches(dataset: TokenizedDataset, pad: int, rank: int) -> list[dict[str, Any]]:
    """Two steps' micro-batches of one rank: rows 3r..3r+2, then 6+3r..6+3r+2."""
    collate = MTPCollator(pad)
    return [collate([dataset[i] for i in range(6 * step + 3 * rank, 6 * step + 3 * rank + 3)])
            for step in range(2)]


def _prepared(world: Path, strategy: str, rank: int, perturb: bool = False) -> tuple[Any, ...]:
    """The tiny model made data-parallel; rank 1's starting weights perturbed on request."""
    model, dataset, config, pad = _dataset(world)
    set_trainable(model, trunk=True, heads=True, value_head=False)  # as the pretrain objective does
    if perturb and rank == 1:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.01)
    prepare_model(model, strategy, CPU)
    optimizer = build_optimizer(trainable_parameters(model), 3e-3, 0.0)
    return model, optimizer, build_scheduler(optimizer, 2, 0.0), dataset, config, pad


def _step(model: Any, optimizer: Any, scheduler: Any, batch: dict, config: Any, step: int) -> dict[str, float]:
    return train_step(model, [batch], objective_for("pretrain", config.training), optimizer, scheduler,
                      max_grad_norm=1.0, device=CPU, step=step)


def _train(world: Path, strategy: str, rank: int, scratch: Path) -> dict[str, Any]:
    """The synced gradient of step 1's batches, two optimizer steps, and the second step
    again after restoring the state saved after the first (what a resume does)."""
    model, optimizer, scheduler, dataset, config, pad = _prepared(world, strategy, rank, perturb=True)
    batches = _step_batches(dataset, pad, rank)
    params = [p for _, p in trainable_parameters(model)]
    accumulate_batch(model, batches[0], objective_for("pretrain", config.training), LossSums(4), backward=True)
    sync_gradients(params, model)
    grads = [_full(p.grad) for p in params]
    model.zero_grad(set_to_none=True)
    figures = [_step(model, optimizer, scheduler, batches[0], config, 1)]
    saved = {"model": model_state(model), "optimizer": optimizer_state(model, optimizer),
             "scheduler": scheduler.state_dict()}
    path = scratch / f"{strategy}.pt"
    if rank == 0:
        torch.save(saved, path)
    distributed.barrier()
    figures.append(_step(model, optimizer, scheduler, batches[1], config, 2))
    state = {k: v.clone() for k, v in model_state(model).items()}
    resumed, optimizer, scheduler, _, _, _ = _prepared(world, strategy, rank)
    payload = torch.load(path, weights_only=True)
    load_model_state(resumed, payload["model"])
    load_optimizer_state(resumed, optimizer, payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _step(resumed, optimizer, scheduler, batches[1], config, 2)
    return {"grads": grads, "figures": figures, "state": state,
            "resumed": {k: v.clone() for k, v in model_state(resumed).items()}}


def _no_target_gradient(world: Path, strategy: str, rank: int) -> list[torch.Tensor]:
    """Rank 0's micro-batch has no labelled token at all (e.g. only incorrect rows under
    ``train_on: correct``): its heads must still join the gradient reduction."""
    model, dataset, config, pad = _dataset(world)
    set_trainable(model, trunk=True, heads=True, value_head=False)
    if strategy == "fsdp":
        shard_model(model)
    batch = _step_batches(dataset, pad, rank)[0]
    if rank == 0:
        batch = {**batch, "labels": torch.full_like(batch["labels"], IGNORE_INDEX)}
    params = [p for _, p in trainable_parameters(model)]
    accumulate_batch(model, batch, objective_for("pretrain", config.training), LossSums(4), backward=True)
    sync_gradients(params, model)
    return [_full(p.grad) for p in params]


def _full(tensor: torch.Tensor) -> torch.Tensor:
    full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
    return full.detach().clone()


def _sharded_on_cpu(world: Path) -> bool:
    model, _, _, _ = _dataset(world)
    return is_sharded(prepare_model(model, "fsdp", CPU))


def _worker(rank: int, world: str, out: str, port: int) -> None:
    os.environ.update(torchrun_env(rank, WORLD, port))
    torch.set_num_threads(1)
    assert distributed.init_distributed("gloo", timeout_minutes=2)
    try:
        result = {"eval": _evaluate(Path(world), batch_size=3), "sharded": _sharded_on_cpu(Path(world)),
                  "ddp": _train(Path(world), "ddp", rank, Path(out)),
                  "fsdp": _train(Path(world), "fsdp", rank, Path(out)),
                  "no_target": {s: _no_target_gradient(Path(world), s, rank) for s in ("ddp", "fsdp")},
                  "rank": distributed.get_rank(), "world_size": distributed.get_world_size()}
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, Any]]:
    world = make_world(tmp_path_factory.mktemp("world"))
    out = tmp_path_factory.mktemp("out")
    mp.spawn(_worker, args=(str(world), str(out), free_port()), nprocs=WORLD, join=True)
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    results[0]["world"] = world
    return results


def _close(a: float, b: float, rel: float = 1e-5) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-8)


@pytest.mark.timeout(180)
def test_ranks_know_who_they_are(ranks):
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]


def test_validation_on_two_shards_equals_one_process(ranks):
    """13 rows: rank 0 evaluates 7 (3 batches), rank 1 six (2 batches and a filler); one
    process with 6 rows per batch sees the same global batches, so even the TD-whitened
    stage-2 figures agree."""
    torch.set_num_threads(1)
    expected = _evaluate(ranks[0]["world"], batch_size=6)
    for result in ranks:
        for stage in STAGES:
            got = result["eval"][stage]
            assert set(got) == set(expected[stage])
            bad = {k: (got[k], expected[stage][k]) for k in got if not _close(got[k], expected[stage][k])}
            assert not bad, f"{stage}: {bad}"
    assert expected["stage2"]["val_tokens"] == sum(
        len(row["input_ids"]) for row in _dataset(ranks[0]["world"])[1])


def test_gradient_is_the_mean_of_the_ranks_gradients(ranks):
    torch.set_num_threads(1)
    model, dataset, config, pad = _dataset(ranks[0]["world"])
    set_trainable(model, trunk=True, heads=True, value_head=False)
    objective = objective_for("pretrain", config.training)
    params = [p for _, p in trainable_parameters(model)]
    per_rank = []
    for rank in range(WORLD):
        model.zero_grad(set_to_none=True)
        accumulate_batch(model, _step_batches(dataset, pad, rank)[0], objective, LossSums(4), backward=True)
        per_rank.append([p.grad.clone() for p in params])
    mean = [(g0 + g1) / 2 for g0, g1 in zip(*per_rank)]
    for strategy, atol in (("ddp", 1e-7), ("fsdp", 1e-6)):
        for result in ranks:
            for got, want in zip(result[strategy]["grads"], mean):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=atol)


def test_a_rank_without_targets_still_joins_the_reduction(ranks):
    """No hang (FSDP reduces per unit after each backward) and the right mean: rank 0
    contributes zeros, so the gradient is half of rank 1's own."""
    torch.set_num_threads(1)
    model, dataset, config, pad = _dataset(ranks[0]["world"])
    set_trainable(model, trunk=True, heads=True, value_head=False)
    accumulate_batch(model, _step_batches(dataset, pad, 1)[0], objective_for("pretrain", config.training),
                     LossSums(4), backward=True)
    half = [p.grad / 2 for _, p in trainable_parameters(model)]
    for strategy in ("ddp", "fsdp"):
        for got, want in zip(ranks[0]["no_target"][strategy], half):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_step_figures_cover_both_ranks_batches(ranks):
    """The logged train loss is token-weighted over the global batch, on every rank."""
    torch.set_num_threads(1)
    model, dataset, config, pad = _dataset(ranks[0]["world"])
    objective = objective_for("pretrain", config.training)
    sums = LossSums(4)
    with torch.no_grad():
        for rank in range(WORLD):
            accumulate_batch(model, _step_batches(dataset, pad, rank)[0], objective, sums)
    expected = summarize(sums, objective)
    for result in ranks:
        first = result["ddp"]["figures"][0]
        assert first["mtp_loss"] == pytest.approx(expected["mtp_loss"], rel=1e-6)
        assert first["tokens"] == expected["tokens"]


def test_ranks_hold_identical_parameters_after_steps(ranks):
    """Rank 1 started from perturbed weights: the broadcast, then the averaged gradients,
    keep both replicas equal; FSDP's shards gather to the same model."""
    for strategy in ("ddp", "fsdp"):
        states = [result[strategy]["state"] for result in ranks]
        for key, value in states[0].items():
            assert torch.equal(value, states[1][key]), (strategy, key)
    for key, value in ranks[0]["ddp"]["state"].items():
        torch.testing.assert_close(ranks[0]["fsdp"]["state"][key], value, rtol=1e-4, atol=1e-5)


def test_resuming_from_the_saved_state_repeats_the_step(ranks):
    """Model, optimizer and scheduler state saved after step 1 (gathered from the shards
    under FSDP) and loaded into a fresh model reproduce step 2."""
    for strategy in ("ddp", "fsdp"):
        for result in ranks:
            for key, value in result[strategy]["state"].items():
                torch.testing.assert_close(result[strategy]["resumed"][key], value, rtol=0, atol=1e-7)


def test_fsdp_runs_on_cpu(ranks):
    """``strategy: fsdp`` shards on CPU/gloo too (the path these tests check)."""
    assert all(result["sharded"] for result in ranks)
