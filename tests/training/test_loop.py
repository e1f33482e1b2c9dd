"""The shared training loop on a tiny model: steps, logging, reproducibility, resume, NaN guard.

Layer 2 of the test plan: seeded fp32 runs of the real stage entry points on CPU.
"""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
from training_helpers import run_stage, train_losses

from weighted_mtp.training import trainer as loop
from weighted_mtp.training.checkpoint import load_checkpoint
from weighted_mtp.training.metrics_logger import ConsoleBackend, HistoryBackend, MetricsLogger
from weighted_mtp.training.trainer import plan_steps, resume_path

# 18 training rows, batch_size 4 → 5 micro-batches (= steps) per epoch.
STEPS_PER_EPOCH = 5


def _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path, **kwargs):
    logger = kwargs.pop("logger", MetricsLogger([HistoryBackend()]))
    adapter = kwargs.pop("adapter", None) or make_adapter()
    return run_stage("stage2", adapter, tokenizer, train_records, val_records, config, tmp_path,
                     logger=logger, **kwargs)


def test_plan_steps_fractional_epochs():
    assert plan_steps(5, 1, 1.6) == (5, 8)
    assert plan_steps(5, 1, 0.5) == (5, 2)  # int(2.5)
    assert plan_steps(5, 1, 0.01) == (5, 1)  # at least one step
    assert plan_steps(5, 2, 1.0) == (2, 2)  # the 5th micro-batch of an epoch is not used
    with pytest.raises(ValueError, match="gradient_accumulation_steps is 6"):
        plan_steps(5, 6, 1.0)


def test_fractional_epochs_run_that_many_steps(make_adapter, tokenizer, train_records,
                                                val_records, make_config, tmp_path):
    config = make_config({"training": {"stage2": {"n_epochs": 0.5}}})
    result = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path)
    assert (result.global_step, result.total_steps, result.completed) == (2, 2, True)
    assert [step for step, _ in train_losses(result.history)] == [1, 2]


def test_log_lines_at_the_right_steps_across_an_epoch_boundary(
        make_adapter, tokenizer, train_records, val_records, make_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="weighted_mtp.training")
    config = make_config({"training": {"log_interval": 2, "stage2": {"n_epochs": 1.6}}})
    history = HistoryBackend()
    logger = MetricsLogger([ConsoleBackend(), history])
    result = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path, logger=logger)
    blocks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[Stage 2] Step")]
    train_steps = [int(re.match(r"\[Stage 2\] Step (\d+)  epoch", b).group(1)) for b in blocks
                   if "  epoch " in b]
    val_steps = [int(re.match(r"\[Stage 2\] Step (\d+)  validation", b).group(1)) for b in blocks
                 if "validation" in b]
    assert result.total_steps == 8
    assert train_steps == [2, 4, 6, 8]  # the global step runs on across the epoch end (5)
    assert val_steps == [5, 8]  # epoch end and end of training
    assert "[Stage 2] Step 6  epoch 1.20  lr " in blocks[train_steps.index(6) + 1]
    train_row = history.rows[0]
    assert set(train_row) == {
        "step", "stage2/epoch", "stage2/lr", "stage2/grad_norm", "stage2/tokens_per_s",
        *(f"stage2/train/head{k}_loss" for k in range(4)),
        "stage2/train/mtp_loss", "stage2/train/weighted_mtp_loss", "stage2/train/value_loss",
        "stage2/train/loss", "stage2/weights/mean", "stage2/weights/std",
        "stage2/weights/clipped_low", "stage2/weights/clipped_high", "stage2/weights/ess",
        "stage2/td/mean", "stage2/td/std",
    }
    val_row = next(row for row in history.rows if "stage2/val_loss" in row)
    assert {"stage2/val_loss", "stage2/val_mtp_loss", "stage2/val_value_loss",
            "stage2/val_value_explained_variance", "stage2/val_head3_loss",
            "stage2/best_val_loss"} <= set(val_row)


def test_seeded_runs_give_identical_losses(make_adapter, tokenizer, train_records, val_records,
                                           make_config, tmp_path):
    config = make_config({"training": {"stage2": {"n_epochs": 0.8}}})
    first = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "a")
    second = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "b")
    losses = train_losses(first.history)
    assert len(losses) == 4 and losses == train_losses(second.history)
    assert losses[0][1] != losses[-1][1]  # it trains


def test_resume_reproduces_the_uninterrupted_run(make_adapter, tokenizer, train_records,
                                                 val_records, make_config, tmp_path, caplog):
    """10 steps straight vs 7 steps, stop, resume (mid-epoch 2, with EMA and a best so far)."""
    overrides = {"training": {"eval_interval": 3, "stage2": {
        "n_epochs": 2, "td_ema": {"enabled": True, "warmup_steps": 2}}}}
    config = make_config(overrides)
    full = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "full")
    cut = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "cut",
                  stop_after_steps=7)
    assert (cut.completed, cut.global_step) == (False, 7)
    assert cut.final_checkpoint.name == "checkpoint_stage2_step_7.pt"
    saved = load_checkpoint(cut.final_checkpoint)
    assert (saved["epoch"], saved["batch_in_epoch"], saved["ema"]["steps"]) == (1, 2, 7)

    caplog.set_level(logging.WARNING)
    resumed_config = make_config(overrides | {"training": {
        **overrides["training"], "resume_from": str(cut.final_checkpoint)}})
    resumed = _stage2(make_adapter, tokenizer, train_records, val_records, resumed_config,
                      tmp_path / "cut")
    expected, got = train_losses(full.history), train_losses(resumed.history)
    assert [s for s, _ in got] == list(range(1, 11))  # history kept across the resume
    for (step_a, loss_a), (step_b, loss_b) in zip(expected[7:], got[7:]):
        assert step_a == step_b and loss_b == pytest.approx(loss_a, abs=1e-5)
    assert resumed.best_metric == pytest.approx(full.best_metric, abs=1e-5)
    assert resumed.metrics["val_loss"] == pytest.approx(full.metrics["val_loss"], abs=1e-5)
    assert "changed config" not in caplog.text  # resume_from itself is an expected change


def test_resume_reports_changed_config_keys(make_adapter, tokenizer, train_records, val_records,
                                            make_config, tmp_path, caplog):
    config = make_config({"training": {"stage2": {"n_epochs": 0.8}}})
    cut = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path,
                  stop_after_steps=2)
    caplog.set_level(logging.WARNING)
    changed = make_config({"training": {"stage2": {"n_epochs": 0.8, "beta": 1.5}}})
    _stage2(make_adapter, tokenizer, train_records, val_records, changed, tmp_path,
            resume_from=cut.final_checkpoint)
    assert "training.stage2.beta: 0.9 -> 1.5" in caplog.text
    with pytest.raises(ValueError, match="steps per epoch"):
        other_batch = make_config({"training": {"stage2": {"n_epochs": 0.8, "batch_size": 2}}})
        _stage2(make_adapter, tokenizer, train_records, val_records, other_batch, tmp_path,
                resume_from=cut.final_checkpoint)


def test_non_finite_loss_raises_and_best_checkpoint_stays_loadable(
        make_adapter, tokenizer, train_records, val_records, make_config, tmp_path, monkeypatch):
    real_step = loop.train_step
    adapter = make_adapter()

    def poisoning_step(*args, **kwargs):
        figures = real_step(*args, **kwargs)
        if kwargs["step"] == 3:  # after step 3 the output projection holds a NaN
            with torch.no_grad():
                adapter.transformer.output.weight[0, 0] = math.nan
        return figures

    monkeypatch.setattr(loop, "train_step", poisoning_step)
    config = make_config({"training": {"eval_interval": 2}})
    with pytest.raises(FloatingPointError, match=r"\[stage2\] non-finite head0_loss = nan at global step 4"):
        _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path, adapter=adapter)
    best = load_checkpoint(tmp_path / "checkpoint_stage2_best.pt")
    assert best["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in best["model"].values())
    assert not (tmp_path / "checkpoint_stage2_final.pt").exists()


def test_best_checkpoint_follows_the_monitored_metric_in_the_loop(
        make_adapter, tokenizer, train_records, val_records, make_config, tmp_path, monkeypatch):
    sequence = iter([3.0, 2.0, 2.5, 1.0, 1.5])
    monkeypatch.setattr(loop, "evaluate_stage", lambda *a, **k: {"val_loss": next(sequence)})
    saved: list[tuple[str, int]] = []
    real_save = loop.save_checkpoint

    def recording_save(path, payload):
        saved.append((path.name, payload["global_step"]))
        return real_save(path, payload)

    monkeypatch.setattr(loop, "save_checkpoint", recording_save)
    config = make_config({"training": {"eval_interval": 1, "save_checkpoint_every": 5}})
    result = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path)
    best_saves = [step for name, step in saved if name == "checkpoint_stage2_best.pt"]
    assert best_saves == [1, 2, 4]
    assert result.best_metric == 1.0 and load_checkpoint(result.best_checkpoint)["global_step"] == 4
    assert [name for name, _ in saved if "best" not in name] == ["checkpoint_stage2_final.pt"]


def test_gradient_accumulation_counts_optimizer_steps(make_adapter, tokenizer, train_records,
                                                      val_records, make_config, tmp_path):
    config = make_config({"training": {"stage2": {
        "batch_size": 2, "gradient_accumulation_steps": 2, "n_epochs": 1}}})
    result = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path)
    # 18 rows / 2 = 9 micro-batches per epoch → 4 steps of 2 (the 9th is left over)
    assert (result.total_steps, result.global_step) == (4, 4)
    final = load_checkpoint(result.final_checkpoint)
    assert (final["epoch"], final["batch_in_epoch"], final["steps_per_epoch"]) == (1, 0, 4)


def test_configured_resume_from_of_another_stage_is_ignored(tmp_path):
    other = str(tmp_path / "checkpoint_stage2_step_4.pt")
    assert resume_path("stage1", None, other) is None
    assert resume_path("stage2", None, other) == tmp_path / "checkpoint_stage2_step_4.pt"
    assert resume_path("stage1", tmp_path / "x.pt", other) == tmp_path / "x.pt"  # explicit wins


@pytest.mark.parametrize("change, key", [({"value_coef": 0.25}, "value_coef"), ({"train_on": "all"}, "ce_rows"),
                                         ({"value_target": "first_error"}, "value_target")])
def test_resume_refuses_a_changed_objective_naming_the_key(change, key, make_adapter, tokenizer, train_records,
                                                           val_records, make_config, tmp_path):
    config = make_config({"training": {"stage2": {"n_epochs": 0.8}}})
    cut = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path, stop_after_steps=2)
    changed = make_config({"training": {"stage2": {"n_epochs": 0.8, **change}}})
    with pytest.raises(ValueError, match=rf"cannot resume stage2 with a different objective \(.*{key}: "):
        _stage2(make_adapter, tokenizer, train_records, val_records, changed, tmp_path,
                resume_from=cut.final_checkpoint)


def test_rolling_checkpoint_every_n_steps_and_resume_from_last(make_adapter, tokenizer, train_records, val_records,
                                                              make_config, tmp_path):
    config = make_config({"training": {"save_every_steps": 2, "stage2": {"n_epochs": 1.6}}})
    full = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "runs" / "a")
    cut = _stage2(make_adapter, tokenizer, train_records, val_records, config, tmp_path / "runs" / "b",
                  stop_after_steps=5)
    last = tmp_path / "runs" / "b" / "checkpoint_stage2_last.pt"
    assert load_checkpoint(last)["global_step"] == 4  # the newest multiple of 2 before the stop
    resumed_config = make_config({"training": {"save_every_steps": 2, "resume_from": "last",
                                               "stage2": {"n_epochs": 1.6}}})
    resumed = _stage2(make_adapter, tokenizer, train_records, val_records, resumed_config, tmp_path / "runs" / "c")
    expected, got = dict(train_losses(full.history)), dict(train_losses(resumed.history))
    assert sorted(got) == sorted(expected) == list(range(1, 9))
    assert [got[step] for step in expected] == pytest.approx(list(expected.values()), abs=1e-5)
