"""FSDP2 through the Trainer on two real CPU/gloo ranks.

Three ``torch.multiprocessing.spawn`` runs of two workers, each training the tiny model
with ``trainer_for`` exactly as the pipeline's nodes do:

- **A** trains 20 pretrain steps with DDP and with FSDP (and FSDP with activation
  checkpointing); FSDP stopped after step 8 (``stop_after_steps``, sharded ``step_8.dcp``)
  and resumed from it; stage 2 (TD weights with the EMA, a ``block`` value head) straight
  through and stopped-then-resumed from ``last``;
- **B** runs the same stage 2 and rank 1 SIGKILLs itself at step 8, after the rolling
  ``last`` of step 6 was written: the job really dies;
- **C** starts afresh with ``resume_from: last`` and finishes it; it also loads the model
  through the meta device with rank 0 alone reading the file.

The tests compare these with one process on the same data: every row has the same number
of tokens, so each rank's token-weighted loss has the same denominator and the mean of the
ranks' gradients is exactly the one-process gradient of the global batch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from dist_helpers import free_port, params, torchrun_env
from project_runs import merge

pytestmark = pytest.mark.slow

WORLD = 2
STEPS = 20
STAGE2_STEPS = 12
KILL_STEP = 8


def _records() -> list[dict[str, Any]]:
    """80 training rows of exactly 50 tokens (16 labelled): only a digit differs."""
    return [{"instruction": "Write f.", "input": "", "output": f"def f(a, b):\n    return a * b - {i % 10}\n",
             "task_id": f"t{i}", "problem_id": f"p{i // 3}", "is_correct": i % 3 != 2, "difficulty": 1}
            for i in range(4 * STEPS)]


def _write_world(folder: Path) -> Path:
    from weighted_mtp.data import tokenizer_training_texts, train_bpe_tokenizer
    from weighted_mtp.models import create_micro_model

    rows = _records()
    (folder / "records.json").write_text(json.dumps(rows))
    tokenizer = train_bpe_tokenizer(tokenizer_training_texts(rows), vocab_size=400)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    create_micro_model(folder / "model", vocab_size=len(tokenizer), seed=0, value_head="block", dim=32,
                       n_layers=5, n_heads=2, n_kv_heads=1, n_future_tokens=4, max_seq_len=64, multiple_of=16)
    return folder


def _config(strategy: str, batch_size: int, **training: Any) -> Any:
    """20 pretrain steps (one epoch of 80 rows, a global batch of 4: validation and the
    best checkpoint only at the end) or 12 stage-2 steps with TD weights and the EMA; a
    rolling checkpoint every 6 steps; ``training`` overrides the training block."""
    from weighted_mtp.config import validate_config

    overrides = {"training": {
        "save_every_steps": 6, "distributed": {"strategy": strategy},
        "pretrain": {"batch_size": batch_size, "n_epochs": 1},
        "stage2": {"batch_size": batch_size, "n_epochs": STAGE2_STEPS / STEPS, "td_ema": {"enabled": True}},
        **training}}
    return validate_config(merge(params(), overrides))


def _fit(world: Path, stage: str, config: Any, checkpoint_dir: Path | None = None, **fit: Any) -> Any:
    from weighted_mtp.data import load_tokenizer
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.training.metrics_logger import MetricsLogger
    from weighted_mtp.training.trainer import trainer_for

    rows = json.loads((world / "records.json").read_text())
    model = MetaLlamaMTPAdapter.from_pretrained(world / "model")
    trainer = trainer_for(stage, config, checkpoint_dir=checkpoint_dir, logger=MetricsLogger([]))
    return trainer.fit(model, load_tokenizer(world / "tokenizer"), rows, rows[:4], progress=False, **fit)


def _losses(result: Any) -> dict[int, float]:
    return {row["step"]: row["train/loss"] for row in result.history if "train/loss" in row}


def _summary(result: Any) -> dict[str, Any]:
    return {"losses": _losses(result), "final": str(result.final_checkpoint),
            "best": str(result.best_checkpoint), "state": {k: v.clone() for k, v in result.model.state_dict().items()}}


def _run_a(world: Path, out: Path) -> dict[str, Any]:
    fsdp = _config("fsdp", 2)
    stopped = _fit(world, "pretrain", fsdp, out / "stop", stop_after_steps=8)
    stage2_stopped = _fit(world, "stage2", fsdp, out / "s2" / "r1", stop_after_steps=7)
    return {
        "ddp": _summary(_fit(world, "pretrain", _config("ddp", 2))),
        "fsdp": _summary(_fit(world, "pretrain", fsdp, out / "fsdp")),
        "checkpointed": _summary(_fit(world, "pretrain", _config(
            "fsdp", 2, distributed={"strategy": "fsdp", "activation_checkpointing": True}), stop_after_steps=6)),
        "stopped": str(stopped.final_checkpoint),
        "resumed": _summary(_fit(world, "pretrain", fsdp, out / "stop", resume_from=stopped.final_checkpoint)),
        "stage2": _summary(_fit(world, "stage2", fsdp, out / "s2_straight")),
        "stage2_stopped": str(stage2_stopped.final_checkpoint),
        "stage2_resumed": _summary(_fit(world, "stage2", _config("fsdp", 2, resume_from="last"), out / "s2" / "r2")),
    }


def _run_b(world: Path, out: Path) -> dict[str, Any]:
    """Rank 1 dies (SIGKILL) as step 8 starts; rank 0 then fails in that step's collectives."""
    from weighted_mtp.training import trainer

    original = trainer.train_step

    def dying(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("step") == KILL_STEP and trainer.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    trainer.train_step = dying
    _fit(world, "stage2", _config("fsdp", 2), out / "death" / "r1")
    return {}


def _run_c(world: Path, out: Path) -> dict[str, Any]:
    from weighted_mtp.runtime.parallel import is_sharded
    from weighted_mtp.runtime.sharded_checkpoint import consolidated_state, load_pretrained_sharded

    resumed = _fit(world, "stage2", _config("fsdp", 2, resume_from="last"), out / "death" / "r2")
    meta = load_pretrained_sharded(world / "model")
    local = {key: value.to_local().clone() for key, value in meta.state_dict().items()}
    return {"after_death": _summary(resumed), "meta_sharded": is_sharded(meta), "meta_local": local,
            "meta_full": consolidated_state(meta)}


def _worker(rank: int, scenario: str, world: str, out: str, port: int) -> None:
    from weighted_mtp.runtime import distributed

    os.environ.update(torchrun_env(rank, WORLD, port))
    torch.set_num_threads(1)
    assert distributed.init_distributed("gloo", timeout_minutes=2)
    try:
        run = {"a": _run_a, "b": _run_b, "c": _run_c}[scenario]
        torch.save(run(Path(world), Path(out)), Path(out) / f"{scenario}_rank{rank}.pt")
    finally:
        distributed.shutdown()


def _spawn(scenario: str, world: Path, out: Path) -> list[dict[str, Any]]:
    mp.spawn(_worker, args=(scenario, str(world), str(out), free_port()), nprocs=WORLD, join=True)
    return [torch.load(out / f"{scenario}_rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    world = _write_world(tmp_path_factory.mktemp("world"))
    out = tmp_path_factory.mktemp("out")
    a = _spawn("a", world, out)
    with pytest.raises(mp.ProcessExitedException, match="SIGKILL") as died:
        _spawn("b", world, out)
    c = _spawn("c", world, out)
    return {"world": world, "out": out, "a": a, "c": c, "died": died.value}


def _one_process(world: Path, stage: str, **config: Any) -> Any:
    torch.set_num_threads(1)
    return _fit(world, stage, _config("ddp", 4, **config))


def _assert_same_losses(got: dict[int, float], want: dict[int, float], tol: float) -> None:
    assert sorted(got) == sorted(want)
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=tol, abs=tol), f"step {step}: {got[step]} vs {loss}"


@pytest.mark.timeout(300)
def test_fsdp_ddp_and_one_process_give_the_same_losses(runs):
    """20 steps: FSDP2 = DDP = one process with the global batch, to 1e-4 (logged losses
    cover the global batch; every step's update is the same)."""
    one = _losses(_one_process(runs["world"], "pretrain"))
    assert len(one) == STEPS
    for rank in runs["a"]:
        _assert_same_losses(rank["fsdp"]["losses"], one, 1e-4)
        _assert_same_losses(rank["ddp"]["losses"], one, 1e-4)
    assert one[STEPS] < one[1] - 0.5  # it learns: the comparison is not of constants


def test_ranks_end_with_the_same_plain_model(runs):
    """The StageResult model is unsharded on every rank (gathered to rank 0, broadcast)."""
    states = [rank["fsdp"]["state"] for rank in runs["a"]]
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    ddp = runs["a"][0]["ddp"]["state"]
    for key, value in ddp.items():
        torch.testing.assert_close(states[0][key], value, rtol=1e-4, atol=1e-5)


def test_sharded_checkpoints_are_folders_with_one_shard_per_rank(runs):
    final = Path(runs["a"][0]["fsdp"]["final"])
    assert final.name == "checkpoint_pretrain_final.dcp" and final.is_dir()
    assert sorted(p.name for p in final.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert {"COMPLETE", "train_state.pt", ".metadata", "model"} <= {p.name for p in final.iterdir()}
    rolling = final.with_name("checkpoint_pretrain_last.dcp")
    assert json.loads((rolling / "COMPLETE").read_text())["global_step"] == 18  # every 6 steps, not the last
    assert not list(final.parent.glob("*.pt"))  # a sharded run writes no .pt
    assert not list(final.parent.glob(".*"))  # no staging folder left


def test_a_stopped_fsdp_run_resumes_exactly(runs):
    """Stopped after step 8 (step_8.dcp), resumed in fresh models: steps 9..20 equal the
    uninterrupted run's to 1e-5."""
    assert runs["a"][0]["stopped"].endswith("checkpoint_pretrain_step_8.dcp")
    for rank in runs["a"]:
        straight, resumed = rank["fsdp"]["losses"], rank["resumed"]["losses"]
        _assert_same_losses(resumed, straight, 1e-5)
        for key, value in rank["fsdp"]["state"].items():
            torch.testing.assert_close(rank["resumed"]["state"][key], value, rtol=1e-5, atol=1e-6)


def test_stage2_with_ema_resumes_from_last(runs):
    """Stage 2 (TD weights, EMA state, value head, scheduler) stopped after step 7 and
    resumed from ``last`` (step 6) in a new run folder equals the uninterrupted run."""
    for rank in runs["a"]:
        _assert_same_losses(rank["stage2_resumed"]["losses"], rank["stage2"]["losses"], 1e-5)
    assert len(runs["a"][0]["stage2"]["losses"]) == STAGE2_STEPS


def test_a_killed_fsdp_run_resumes_exactly(runs):
    """Rank 1 really died (SIGKILL) at step 8; a new job resumed from the rolling sharded
    checkpoint of step 6 and ended exactly where the uninterrupted run ends."""
    assert "process 1 terminated with signal SIGKILL" in str(runs["died"])
    killed = runs["out"] / "death" / "r1"
    assert json.loads((killed / "checkpoint_stage2_last.dcp" / "COMPLETE").read_text())["global_step"] == 6
    straight = runs["a"][0]["stage2"]
    for rank in runs["c"]:
        _assert_same_losses(rank["after_death"]["losses"], straight["losses"], 1e-5)
        for key, value in straight["state"].items():
            torch.testing.assert_close(rank["after_death"]["state"][key], value, rtol=1e-5, atol=1e-6)


def test_an_incomplete_sharded_checkpoint_is_never_loaded(runs, tmp_path):
    """A folder without its marker (a write a crash cut short) is skipped by ``last`` and
    refused by name; a staging folder is removed by the next run's start-up."""
    from weighted_mtp.runtime.files import remove_stale_temp_files
    from weighted_mtp.runtime.runs import latest_checkpoint
    from weighted_mtp.training.checkpoint import load_checkpoint

    complete = runs["out"] / "death" / "r1" / "checkpoint_stage2_last.dcp"
    base = tmp_path / "runs"
    shutil.copytree(complete, base / "old" / complete.name)
    cut = base / "new" / complete.name
    shutil.copytree(complete, cut)
    (cut / "COMPLETE").unlink()
    shutil.copytree(cut, base / "new" / f".{complete.name}.tmp-1234abcd")
    assert latest_checkpoint(base / "new", "stage2", "last") == base / "old" / complete.name
    with pytest.raises(ValueError, match="incomplete sharded checkpoint .no COMPLETE marker"):
        load_checkpoint(cut)
    assert remove_stale_temp_files(tmp_path) == 1
    assert not (base / "new" / f".{complete.name}.tmp-1234abcd").exists()


def test_the_consolidated_export_loads_in_one_process_with_equal_logits(runs):
    """best and final hold a plain model directory: ``from_pretrained`` in one process gives
    the logits of the model the stage returned, and of the shards loaded without ranks."""
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.runtime.sharded_checkpoint import load_sharded, plain_model

    torch.set_num_threads(1)
    final = Path(runs["a"][0]["fsdp"]["final"])
    exported = MetaLlamaMTPAdapter.from_pretrained(final / "model")
    returned = plain_model(exported, runs["a"][0]["fsdp"]["state"])
    from_shards = plain_model(exported)
    load_sharded(final, from_shards)  # DCP without a process group: one process reads every shard
    ids = torch.randint(0, exported.args.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = returned(ids)
        for model in (exported, from_shards):
            got = model(ids)
            torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=0)
            torch.testing.assert_close(got.values, want.values, rtol=0, atol=0)
    assert Path(runs["a"][0]["fsdp"]["best"]).name == "checkpoint_pretrain_best.dcp"
    assert (Path(runs["a"][0]["fsdp"]["best"]) / "model" / "metadata.json").is_file()


def test_activation_checkpointing_gives_the_same_losses(runs):
    """Per-block recomputation under FSDP and in one process changes no loss (6 steps)."""
    for rank in runs["a"]:
        straight = {step: loss for step, loss in rank["fsdp"]["losses"].items() if step <= 6}
        _assert_same_losses(rank["checkpointed"]["losses"], straight, 1e-6)
    plain, checkpointed = (
        _losses(_fit(runs["world"], "pretrain", _config("ddp", 4, distributed=dict(activation_checkpointing=on)),
                     stop_after_steps=6)) for on in (False, True))
    assert len(plain) == 6
    _assert_same_losses(checkpointed, plain, 1e-6)


def test_meta_device_init_and_rank0_broadcast_equal_a_plain_load(runs):
    """Built on the meta device, sharded, filled by rank 0's read broadcast: every rank
    holds its shard of exactly the weights a plain load gives."""
    from weighted_mtp.models import MetaLlamaMTPAdapter

    plain = MetaLlamaMTPAdapter.from_pretrained(runs["world"] / "model").state_dict()
    assert all(rank["meta_sharded"] for rank in runs["c"])
    full = runs["c"][0]["meta_full"]
    assert set(full) == set(plain) and runs["c"][1]["meta_full"] == {}  # gathered on rank 0 only
    for key, value in plain.items():
        assert torch.equal(full[key], value), key
        halves = [rank["meta_local"][key] for rank in runs["c"]]
        assert torch.equal(torch.cat(halves), value), key  # Shard(0): rank r holds rows r·n/2 …
