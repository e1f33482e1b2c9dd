"""Stage entry points: what trains in each recipe, each weighting, and evaluate_stage."""

from __future__ import annotations

import math

import pytest
import torch
from training_helpers import CPU, run_stage, train_losses

from weighted_mtp.data import MTPCollator, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.losses import per_token_ce, value_state_mask
from weighted_mtp.pipelines.stage1.nodes import train_stage1
from weighted_mtp.training.objective import objective_for


def _snapshot(adapter) -> dict[str, list[torch.Tensor]]:
    return {
        "trunk": [p.detach().clone() for p in adapter.trunk_parameters()],
        "heads": [p.detach().clone() for p in adapter.head_parameters()],
        "value": [p.detach().clone() for p in adapter.value_head_parameters()],
    }


def _changed(before, adapter) -> dict[str, bool]:
    after = _snapshot(adapter)
    return {part: any(not torch.equal(a, b) for a, b in zip(before[part], after[part]))
            for part in before}


@pytest.mark.parametrize("weighting", ["td", "uniform", "rho1"])
def test_each_stage2_weighting_trains(weighting, make_adapter, tokenizer, train_records,
                                      val_records, make_config, tmp_path):
    value_coef = 0.5 if weighting == "td" else 0.0  # as in conf/verifiable, baseline, rho1
    recipe = {"td": "verifiable", "uniform": "baseline", "rho1": "rho1"}[weighting]
    config = make_config({"project": {"recipe": recipe}, "training": {
        "stage1": {"enabled": weighting != "uniform"},
        "stage2": {"n_epochs": 0.4, "weighting": weighting, "value_coef": value_coef}}})
    adapter = make_adapter()
    before = _snapshot(adapter)
    reference = make_adapter() if weighting == "rho1" else None
    result = run_stage("stage2", adapter, tokenizer, train_records, val_records, config, tmp_path, reference=reference)
    assert result.global_step == 2 and result.model is adapter
    assert all(math.isfinite(loss) for _, loss in train_losses(result.history))
    assert _changed(before, adapter) == {"trunk": True, "heads": True, "value": value_coef > 0}
    weights_mean = result.metrics.get("weights/mean")
    if weighting == "uniform":
        assert weights_mean is None
        assert result.metrics["train/weighted_mtp_loss"] == result.metrics["train/mtp_loss"]
    elif weighting == "rho1":
        assert weights_mean == pytest.approx(0.6, abs=0.05)  # k_percent of the tokens kept
    else:
        assert 0.1 <= weights_mean <= 5.0 and result.metrics["weights/std"] > 0
    assert (tmp_path / "checkpoint_stage2_final.pt").is_file()


def test_rho1_stage2_needs_a_reference(make_adapter, tokenizer, train_records, val_records,
                                       make_config, tmp_path):
    config = make_config({"project": {"recipe": "rho1"},
                          "training": {"stage2": {"weighting": "rho1", "value_coef": 0.0}}})
    with pytest.raises(ValueError, match="no reference model was given"):
        run_stage("stage2", make_adapter(), tokenizer, train_records, val_records, config, tmp_path)


@pytest.mark.parametrize("freeze_trunk", [True, False])
def test_stage1_verifiable_trains_the_value_head_only(freeze_trunk, make_adapter, tokenizer,
                                                      train_records, val_records, make_config,
                                                      tmp_path):
    config = make_config({"training": {"stage1": {"n_epochs": 0.4, "freeze_trunk": freeze_trunk}}})
    adapter = make_adapter()
    before = _snapshot(adapter)
    result = run_stage("stage1", adapter, tokenizer, train_records, val_records, config, tmp_path)
    assert result.model is adapter
    assert _changed(before, adapter) == {"trunk": not freeze_trunk, "heads": False, "value": True}
    assert result.metrics["val_loss"] == result.metrics["val_value_loss"]
    assert "val_value_explained_variance" in result.metrics
    assert result.best_checkpoint.name == "checkpoint_stage1_best.pt"


def test_stage1_node_under_rho1_tunes_a_copy_as_reference(make_adapter, tokenizer, train_records,
                                               val_records, make_config, tmp_path):
    config = make_config({"project": {"recipe": "rho1"}, "training": {
        "stage1": {"n_epochs": 0.4}, "stage2": {"weighting": "rho1", "value_coef": 0.0}}})
    adapter = make_adapter()
    before = _snapshot(adapter)
    project = {**config.raw["project"], "checkpoint_dir": str(tmp_path)}
    reference, record = train_stage1(adapter, tokenizer, train_records, val_records, project,
                                     config.raw["training"], config.raw["models"]["policy"], 64)
    assert reference is not adapter
    assert _changed(before, adapter) == {"trunk": False, "heads": False, "value": False}
    assert _changed(before, reference) == {"trunk": True, "heads": True, "value": False}
    assert record["metrics"]["val_loss"] == record["metrics"]["val_mtp_loss"]
    assert record["recipe"] == "rho1" and record["best_checkpoint"].endswith("checkpoint_stage1_best.pt")


def test_pretrain_trains_trunk_and_heads_without_checkpoints(make_adapter, tokenizer,
                                                             train_records, val_records,
                                                             make_config):
    config = make_config({"training": {"pretrain": {"n_epochs": 0.4}}})
    adapter = make_adapter()
    before = _snapshot(adapter)
    result = run_stage("pretrain", adapter, tokenizer, train_records, val_records, config)
    assert _changed(before, adapter) == {"trunk": True, "heads": True, "value": False}
    assert result.final_checkpoint is None and result.best_checkpoint is None
    losses = [loss for _, loss in train_losses(result.history)]
    assert losses[0] == pytest.approx(math.log(len(tokenizer)), rel=0.1)  # init near log V


def _two_batches(tokenizer, records):
    """A 1-row batch and a 3-row batch: different token counts."""
    dataset = TokenizedDataset(records, tokenizer, 64)
    collate = MTPCollator(resolve_pad_token_id(tokenizer))
    return [collate([dataset[0]]), collate([dataset[1], dataset[2], dataset[3]])]


def test_evaluate_stage_is_token_weighted_and_restores_mode(make_adapter, tokenizer, val_records,
                                                            make_config):
    config = make_config()
    adapter = make_adapter().train()
    batches = _two_batches(tokenizer, val_records)
    figures = evaluate_stage(adapter, batches, objective_for("pretrain", config.training), CPU)
    assert adapter.training
    sums, counts, per_batch = [0.0] * 4, [0] * 4, []
    with torch.no_grad():
        for batch in batches:
            z = adapter.trunk_forward(batch["input_ids"])
            ce, valid = per_token_ce(adapter.head_logits(z, 0), batch["labels"], 1)
            per_batch.append(ce.sum().item() / valid.sum().item())
            for k in range(4):
                ce, valid = per_token_ce(adapter.head_logits(z, k), batch["labels"], k + 1)
                sums[k] += ce.sum().item()
                counts[k] += valid.sum().item()
    for k in range(4):
        assert figures[f"val_head{k}_loss"] == pytest.approx(sums[k] / counts[k], rel=1e-6)
    assert figures["val_mtp_loss"] == pytest.approx(sum(s / c for s, c in zip(sums, counts)) / 4)
    assert figures["val_loss"] == figures["val_mtp_loss"]
    assert figures["val_head0_loss"] != pytest.approx(sum(per_batch) / 2, rel=1e-6)


def test_evaluate_stage_value_loss_is_token_weighted(make_adapter, tokenizer, val_records,
                                                     make_config):
    config = make_config()
    adapter = make_adapter().eval()
    batches = _two_batches(tokenizer, val_records)
    figures = evaluate_stage(adapter, batches, objective_for("stage1", config.training, config.project.recipe), CPU)
    assert not adapter.training
    total, count = 0.0, 0.0
    with torch.no_grad():
        for batch in batches:
            values = adapter.values_from_trunk(adapter.trunk_forward(batch["input_ids"]))
            states = value_state_mask(batch["loss_mask"])
            total += (((values - batch["rewards"][:, None]) ** 2) * states).sum().item()
            count += states.sum().item()
    assert figures["val_value_loss"] == pytest.approx(total / count, rel=1e-6)
    assert figures["val_loss"] == figures["val_value_loss"]
    assert "val_mtp_loss" not in figures  # the verifiable critic stage has no CE


def test_next_token_stage2_trains_head_zero_alone(make_adapter, tokenizer, train_records,
                                                  val_records, make_config, tmp_path):
    config = make_config({"project": {"recipe": "next_token"}, "training": {"stage1": {"enabled": False}, "stage2": {
        "n_epochs": 0.4, "weighting": "uniform", "value_coef": 0.0, "loss_heads": 1}}})
    adapter = make_adapter()
    extra_heads = [p.detach().clone() for p in adapter.transformer.extra_heads.parameters()]
    head0 = [p.detach().clone() for p in adapter.transformer.layers[-1].parameters()]
    result = run_stage("stage2", adapter, tokenizer, train_records, val_records, config, tmp_path)
    assert result.global_step == 2
    assert all(torch.equal(a, b) for a, b in zip(extra_heads, adapter.transformer.extra_heads.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(head0, adapter.transformer.layers[-1].parameters()))
    assert "val_head0_loss" in result.metrics and "val_head1_loss" not in result.metrics
    assert result.metrics["val_mtp_loss"] == result.metrics["val_head0_loss"]


def test_loss_heads_beyond_the_model_is_a_clear_error(make_adapter, tokenizer, train_records,
                                                      val_records, make_config, tmp_path):
    config = make_config({"project": {"recipe": "next_token"}, "training": {"stage1": {"enabled": False}, "stage2": {
        "n_epochs": 0.4, "weighting": "uniform", "value_coef": 0.0, "loss_heads": 1}}})
    objective = objective_for("stage2", config.training)
    with pytest.raises(ValueError, match="loss_heads is 1 but the model has 0 heads"):
        objective.n_loss_heads(0)


def test_stage1_block_critic_trains_its_own_block_and_leaves_the_policy(tokenizer, train_records,
                                                                        val_records, make_config,
                                                                        tmp_path, base_adapter):
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.models.adapter import init_value_head

    adapter = MetaLlamaMTPAdapter(base_adapter.args, value_head="block")
    adapter.transformer.load_state_dict(base_adapter.transformer.state_dict())
    init_value_head(adapter, torch.Generator().manual_seed(0))
    block_before = [p.detach().clone() for p in adapter.value_head.block.parameters()]
    before = _snapshot(adapter)
    config = make_config({"models": {"policy": {"value_head": "block"}},
                          "training": {"stage1": {"n_epochs": 0.4, "learning_rate": 1e-3}}})
    result = run_stage("stage1", adapter, tokenizer, train_records, val_records, config, tmp_path)
    assert _changed(before, adapter) == {"trunk": False, "heads": False, "value": True}
    assert any(not torch.equal(a, b) for a, b in zip(block_before, adapter.value_head.block.parameters()))
    assert 0.0 <= result.metrics["val_value_auroc"] <= 1.0


def test_stage2_refuses_training_rows_without_a_correct_solution(make_adapter, tokenizer, train_records,
                                                                 val_records, make_config, tmp_path):
    config = make_config({"project": {"recipe": "baseline"}, "training": {"stage1": {"enabled": False},
                          "stage2": {"weighting": "uniform", "value_coef": 0.0}}})
    incorrect = [r for r in train_records if not r["is_correct"]]
    with pytest.raises(ValueError, match=r"stage2: none of the 6 training rows is correct"):
        run_stage("stage2", make_adapter(), tokenizer, incorrect, val_records, config, tmp_path)


def test_a_critic_refuses_training_rows_of_one_outcome(make_adapter, tokenizer, train_records, val_records,
                                                       make_config, tmp_path):
    correct = [r for r in train_records if r["is_correct"]]
    with pytest.raises(ValueError, match=r"stage1: all 12 training rows are correct; the critic needs"):
        run_stage("stage1", make_adapter(), tokenizer, correct, val_records, make_config(), tmp_path)


def test_save_best_refuses_a_checkpoint_another_run_wrote(make_adapter, tokenizer, train_records, val_records,
                                                          make_config, tmp_path, monkeypatch):
    from weighted_mtp.pipelines.stage2.nodes import save_best

    monkeypatch.setenv("WMTP_RUN_ID", "run-a")
    result = run_stage("stage2", make_adapter(), tokenizer, train_records, val_records,
                       make_config({"training": {"stage2": {"n_epochs": 0.4}}}), tmp_path)
    summary = result.summary()
    assert summary["run_id"] == "run-a" and save_best(result.model, summary, tokenizer).adapter is result.model
    monkeypatch.setenv("WMTP_RUN_ID", "run-b")  # run b overwrites the file run a's summary names
    run_stage("stage2", make_adapter(), tokenizer, train_records, val_records,
              make_config({"training": {"stage2": {"n_epochs": 0.4}}}), tmp_path)
    with pytest.raises(ValueError, match=r"was written by run run-b, not by run run-a"):
        save_best(result.model, summary, tokenizer)
