"""The whole pipeline under ``torchrun --nproc_per_node 2`` (gloo, CPU), as users launch it.

One tiny run of every stage in a scratch project, then one run in which rank 1 fails.
What the run must look like from outside: one MLflow run with each metric logged once
per step, each checkpoint written once (rank 1 writes no file at all), one console log,
both ranks ending with the same model, and validation figures equal to one process's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from dist_helpers import run_torchrun
from mlflow.tracking import MlflowClient
from project_runs import TINY_PARAMS, make_scratch_project, merge, run_folders

from weighted_mtp.config import validate_config
from weighted_mtp.data import TokenizedDataset, load_tokenizer, read_jsonl, resolve_pad_token_id
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.training.checkpoint import load_checkpoint
from weighted_mtp.training.evaluate import evaluate_stage
from weighted_mtp.training.objective import objective_for
from weighted_mtp.training.trainer import build_loader

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).with_name("launcher.py")
EXPERIMENT = "weighted-mtp/verifiable"
# 76 training rows (30 problems less the 30% test split): 38 per rank, 5 micro-batches of 8
# per epoch. Stage 2 runs int(0.8 · 5) = 4 steps, logging at 2 and 4 and evaluating at 3 and 4.
DIST_PARAMS = merge(TINY_PARAMS, {"training": {"stage2": {"n_epochs": 0.8}}})
CHECKPOINTS = Path("data/06_models/checkpoints/default")


def _project(directory: Path) -> Path:
    project = make_scratch_project(directory)
    (project / "conf" / "dist").mkdir()
    (project / "conf" / "dist" / "parameters.yml").write_text(yaml.safe_dump(DIST_PARAMS))
    return project


def _env(project: Path, out: Path, **extra: str) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}", "WMTP_DATA_ROOT": str(project / "data"),
           "WMTP_PROGRESS": "0", "WMTP_TEST_OUT": str(out), "KEDRO_DISABLE_TELEMETRY": "1",
           "OMP_NUM_THREADS": "1", **extra}
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    project = _project(tmp_path_factory.mktemp("project"))
    out = tmp_path_factory.mktemp("observed")
    result = run_torchrun([str(LAUNCHER), "--env", "dist"], project, _env(project, out), timeout=300)
    observed = {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(2)}
    return {"project": project, "out": out, "result": result, "observed": observed}


def test_the_run_succeeds_and_logs_once(run):
    output = run["result"].stdout
    assert run["result"].returncode == 0, output[-4000:]
    assert output.count("Pipeline execution completed successfully") == 1
    assert output.count("Joined the process group: 2 ranks, backend gloo") == 1
    assert len(re.findall(r"\[Stage 2\] Step 4  validation", output)) == 1
    assert "[rank1]" not in output


def test_one_mlflow_run_with_each_metric_once_per_step(run):
    client = MlflowClient(f"sqlite:///{run['out'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert tracked.info.status == "FINISHED"

    def steps(key: str) -> list[int]:
        return [m.step for m in client.get_metric_history(tracked.info.run_id, key)]

    assert steps("stage2/train/loss") == [2, 4]
    assert steps("stage2/val_loss") == [3, 4]
    assert steps("stage1/val_loss") == [1]
    assert tracked.data.params["stage2/steps_per_epoch"] == "5"  # 38 rows per rank, not 76
    metrics = json.loads((run["project"] / "data/08_reporting/metrics.json").read_text())
    assert tracked.data.metrics["stage2/val_loss"] == pytest.approx(metrics["stage2"]["metrics"]["val_loss"])
    (model,) = client.search_logged_models([experiment.experiment_id])  # rank 0 alone logs the best model
    assert model.source_run_id == tracked.info.run_id and model.name == "model"


def test_checkpoints_are_written_once_by_rank_0_and_load(run):
    (folder,) = run_folders(run["project"] / CHECKPOINTS)  # one run, one folder for every rank
    names = sorted(path.name for path in folder.glob("*.pt"))
    assert names == ["checkpoint_stage1_best.pt", "checkpoint_stage1_final.pt",
                     "checkpoint_stage2_best.pt", "checkpoint_stage2_final.pt"]
    final = load_checkpoint(folder / "checkpoint_stage2_final.pt")
    assert (final["global_step"], final["total_steps"], final["steps_per_epoch"]) == (4, 4, 5)
    rank0 = run["observed"][0]["writes"]
    assert any("checkpoint_stage2_final.pt" in w for w in rank0)  # the audit sees rank 0's writes
    assert run["observed"][1]["writes"] == []  # rank 1 wrote nothing in the project


def test_both_ranks_end_with_the_same_model(run):
    digests = [run["observed"][r]["stage2_digest"] for r in range(2)]
    assert digests[0] is not None and digests[0] == digests[1]


def test_validation_equals_one_process_on_the_same_data(run):
    """The evaluate node (2 ranks, 6 validation rows each) against one process over the
    same rows: 8 rows per rank and 16 in one process give the same global batch."""
    torch.set_num_threads(1)
    project = run["project"]
    reported = json.loads((project / "data/08_reporting/default/best_model_metrics.json").read_text())
    params = merge(yaml.safe_load((project / "conf/base/parameters.yml").read_text()), DIST_PARAMS)
    config = validate_config(merge(params, {"project": {"experiment": "default"},  # the file's is ${globals:...}
                                            "training": {"stage2": {"batch_size": 16}}}))
    tokenizer = load_tokenizer(project / "data/05_model_input/tokenizer")
    rows = read_jsonl(project / "data/05_model_input/validation.jsonl")
    dataset = TokenizedDataset(rows, tokenizer, config.dataset.max_length, drop_unlabelled=True)
    loader, _ = build_loader(dataset, 16, resolve_pad_token_id(tokenizer), seed=0, shuffle=False, evaluation=True)
    model = MetaLlamaMTPAdapter.from_pretrained(project / "data/07_model_output/best_model/default")
    expected = evaluate_stage(model, loader, objective_for("stage2", config.training), torch.device("cpu"))
    for key in ("val_loss", "val_mtp_loss", "val_value_loss", "val_weighted_mtp_loss", "val_tokens"):
        assert reported[key] == pytest.approx(expected[key], rel=1e-5), key


def test_a_failing_rank_ends_every_rank_with_its_error(run, tmp_path):
    """Rank 1 raises in its first stage-1 step: the run stops (no hang), the error is in
    the output, torchrun names rank 1 as the root cause, and rank 0 ends its MLflow run
    as FAILED."""
    project, out = run["project"], tmp_path / "failing"
    env = _env(project, out, WMTP_TEST_FAIL_RANK="1", WMTP_TEST_FAIL_STEP="1")
    result = run_torchrun([str(LAUNCHER), "--env", "dist", "--pipelines", "stage1"], project, env, timeout=180)
    output = result.stdout
    assert result.returncode != 0
    assert "RuntimeError: injected failure on rank 1 at step 1" in output
    assert "Rank 1 of 2 failed: RuntimeError: injected failure on rank 1 at step 1" in output
    root_cause = output[output.index("Root Cause"):]
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", root_cause), root_cause
    assert "Pipeline execution completed" not in output
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (tracked,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert tracked.info.status == "FAILED"
