"""The project end to end through KedroSession, on a tiny config: files, resume point, recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from project_runs import make_scratch_project, newest_run, read_json, run_folders, run_project
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

CHECKPOINTS = Path("data/06_models/checkpoints")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_scratch_project(tmp_path_factory.mktemp("project"))
    run_project(workdir)
    return workdir


def test_data_processing_writes_splits_and_tokenizer(default_run):
    train = default_run / "data/05_model_input/train.jsonl"
    validation = default_run / "data/05_model_input/validation.jsonl"
    assert train.is_file() and validation.is_file()
    assert (default_run / "data/05_model_input/tokenizer/tokenizer.json").is_file()


def test_default_run_leaves_checkpoints_model_and_metrics(default_run):
    folder = newest_run(default_run / CHECKPOINTS / "default")
    for stage in ("stage1", "stage2"):
        assert (folder / f"checkpoint_{stage}_final.pt").is_file()
        assert (folder / f"checkpoint_{stage}_best.pt").is_file()
    best_model = default_run / "data/07_model_output/best_model/default"
    model = MetaLlamaMTPAdapter.from_pretrained(best_model)
    assert (best_model / "tokenizer" / "tokenizer.json").is_file()
    best = load_checkpoint(folder / "checkpoint_stage2_best.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, best["model"][key]), key
    metrics = read_json(default_run / "data/08_reporting/metrics.json")
    assert set(metrics) == {"stage1", "stage2", "best_model"}
    assert metrics["stage2"]["best_checkpoint"].endswith("checkpoint_stage2_best.pt")
    assert metrics["best_model"]["val_loss"] == pytest.approx(metrics["stage2"]["best_metric"], rel=1e-5)


# Recorded from this tiny seeded run (CPU, fp32, torch 2.13): (step, train/loss) and the
# final val_loss of stage 2. A change in the data, tokenizer, model init, loss or schedule
# moves them; update them only for an intended change of the numbers.
# Re-recorded for the 671-problem dataset with its held-out test split (the first 30 raw
# problems now keep 21 for training) and stage-2 n_epochs 0.4 (two logged steps); reproduced
# bit-identically in two processes.
PINNED_STAGE2_TRAIN_LOSS = {2: 9.742890261046727, 4: 9.66463380232421}
PINNED_STAGE2_VAL_LOSS = 9.559826023583579


def test_seeded_stage2_losses_are_pinned(default_run):
    history = load_checkpoint(newest_run(default_run / CHECKPOINTS / "default") / "checkpoint_stage2_final.pt")["history"]
    train = {row["step"]: row["train/loss"] for row in history if "train/loss" in row}
    val = [row["val_loss"] for row in history if "val_loss" in row]
    assert train == pytest.approx(PINNED_STAGE2_TRAIN_LOSS, rel=1e-4, abs=1e-4)
    assert val[-1] == pytest.approx(PINNED_STAGE2_VAL_LOSS, rel=1e-4, abs=1e-4)


def test_micro_model_is_generated_and_warmed_up_once(default_run):
    marker = read_json(default_run / "data/06_models/micro-mtp/weighted_mtp.json")
    assert marker["generated_micro"] is True and marker["pretrained"] is True
    assert (default_run / "data/06_models/micro-mtp/tokenizer").is_dir()


def test_stage2_runs_alone_from_what_stage1_left(default_run):
    summary_path = default_run / CHECKPOINTS / "default/stage2_summary.json"
    first = read_json(summary_path)
    summary_path.unlink()
    run_project(default_run, pipeline_names=["stage2"], from_nodes=["train_stage2"])
    summary = read_json(summary_path)
    assert summary["global_step"] == summary["total_steps"] > 0
    # a second run keeps the first run's checkpoints: each run writes into its own folder
    assert summary["run_id"] != first["run_id"] and (default_run / first["best_checkpoint"]).is_file()
    assert [p.name for p in run_folders(default_run / CHECKPOINTS / "default")][-2:] == [first["run_id"],
                                                                                      summary["run_id"]]


@pytest.mark.parametrize("recipe", ["baseline", "rho1"])
def test_each_recipe_runs(default_run, recipe):
    run_project(default_run, env=recipe)
    metrics = read_json(default_run / "data/08_reporting/metrics.json")
    assert metrics["stage2"]["recipe"] == recipe
    if recipe == "baseline":
        assert metrics["stage1"] == {"skipped": True, "recipe": "baseline"}
    else:
        assert metrics["stage1"]["stage"] == "stage1"
    assert (newest_run(default_run / CHECKPOINTS / recipe) / "checkpoint_stage2_final.pt").is_file()
