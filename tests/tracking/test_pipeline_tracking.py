"""Kedro runs against a real MLflow server (basic auth) and the default local store.

One tiny end-to-end run (every stage, a few steps each) is tracked on the server; the
tests then read it back with ``MlflowClient`` as a user would. The other runs use the
``data_processing`` pipeline only: what they check happens before or around any node.
The tests that need no server come first, while it boots.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from tracking_helpers import ADMIN_PASSWORD, ADMIN_USER, TINY_PARAMS, copy_project, free_port, run_session
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

EXPERIMENT = "weighted-mtp/verifiable"


def test_unreachable_server_fails_before_any_node(make_project, monkeypatch):
    project = make_project("unreachable")
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(RuntimeError, match=rf"{uri} is unreachable \(\[Errno 111\] Connection refused\)"):
        run_session(project, pipelines=["data_processing"])


def test_read_only_local_store_fails_before_any_node(make_project, monkeypatch, tmp_path, read_only):
    project = make_project("read-only-store")
    database = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{database}").search_experiments()  # a real store, tables created
    read_only(database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    with pytest.raises(RuntimeError, match=rf"^MLflow store sqlite:///{database} is read-only \({database} is not "
                                           r"writable\): make it writable, .* mlflow.enabled=false\.$"):
        run_session(project, pipelines=["data_processing"])
    assert not (project / "data" / "05_model_input" / "train.jsonl").exists()  # no node ran


def test_default_local_store_needs_no_server(make_project, monkeypatch):
    project = make_project("local-store")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(project.parent)  # the store is anchored at the project, not the cwd
    run_session(project, pipelines=["data_processing"])
    database = project / "mlflow.db"
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "verifiable/data_processing"
    assert run.data.params["dataset.max_length"] == "512"
    assert (project / "mlruns" / EXPERIMENT / run.info.run_id / "artifacts" / "config" / "parameters.yml").is_file()
    assert not (project.parent / "mlruns").exists()


def test_tracking_off_creates_no_run_and_touches_no_store(make_project, monkeypatch, tmp_path):
    project = make_project("tracking-off")
    store = tmp_path / "untouched.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    run_session(project, params={"mlflow": {"enabled": False}}, pipelines=["data_processing"])
    assert (project / "data" / "05_model_input" / "train.jsonl").is_file()  # the pipeline ran
    assert not store.exists()  # no database, hence no experiment and no run


def test_wrong_password_fails_fast_with_uri_and_status(mlflow_server, make_project, monkeypatch):
    project = make_project("wrong-password")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"{mlflow_server.uri} refused the request: HTTP 401"):
        run_session(project, pipelines=["data_processing"])
    assert time.monotonic() - started < 30
    assert not (project / "data" / "05_model_input" / "train.jsonl").exists()  # no node ran


def test_credentials_reach_a_recipe_env_run_through_conf_base(mlflow_server, make_project, monkeypatch):
    """--env verifiable reads conf/base + conf/verifiable only (never conf/local): the password
    comes from WMTP_MLFLOW_* through conf/base/credentials.yml (oc.env), exported before the check."""
    project = make_project("recipe-env-credentials")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("WMTP_MLFLOW_USERNAME", ADMIN_USER)
    monkeypatch.setenv("WMTP_MLFLOW_PASSWORD", "not-the-password")
    with pytest.raises(RuntimeError, match=rf"refused the request: HTTP 401 \(not authenticated, user '{ADMIN_USER}'\)"):
        run_session(project, params={"mlflow": {"run_name": "creds"}}, pipelines=["data_processing"], env="verifiable")
    monkeypatch.setenv("WMTP_MLFLOW_PASSWORD", ADMIN_PASSWORD)
    run_session(project, params={"mlflow": {"run_name": "creds"}}, pipelines=["data_processing"], env="verifiable")
    client = MlflowClient(mlflow_server.uri)  # reads as the exported admin
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'creds'")
    assert run.info.status == "FINISHED" and run.data.params["training.stage2.beta"] == "1.2"  # conf/verifiable


@pytest.fixture(scope="module")
def tracked_run(mlflow_server, project_template, tmp_path_factory):
    """The whole pipeline, tracked on the server with the right password."""
    project = copy_project(project_template, tmp_path_factory.mktemp("tracked") / "project")
    patch = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    try:
        for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
                           "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD, "WMTP_PROGRESS": "0",
                           "WMTP_DATA_ROOT": str(project / "data")}.items():
            patch.setenv(key, value)
        patch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        torch.set_num_threads(1)  # a 32-wide model: thread hand-offs cost more than they save
        started = time.monotonic()
        run_session(project, params=copy.deepcopy(TINY_PARAMS) | {"mlflow": {"run_name": "tiny"}})
        seconds = time.monotonic() - started
        client = MlflowClient(mlflow_server.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tiny'")
        yield client, run, project, seconds
    finally:
        torch.set_num_threads(threads)
        patch.undo()


def _steps(client, run, key):
    return [metric.step for metric in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


def _artifacts(client, run_id, path=None):
    files = []
    for item in client.list_artifacts(run_id, path):
        files.extend(_artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return files


def test_run_has_flattened_params_and_tags(tracked_run):
    client, run, _, _ = tracked_run
    assert run.info.status == "FINISHED"
    params, tags = run.data.params, run.data.tags
    assert params["training.stage2.beta"] == "0.9"
    assert params["models.policy.micro.dim"] == "32"  # --params reach the record
    assert params["mlflow.log_checkpoints"] == "none" and params["mlflow.log_model"] == "True"
    assert not any(key.startswith("parameters.") for key in params)  # not kedro-mlflow's per-node copy
    assert int(params["stage2/total_steps"]) >= 3  # logged by the loop through the backend
    assert tags["recipe"] == "verifiable"
    assert int(tags["model_parameters"]) > 0
    assert len(tags["git_commit"]) == 40 and tags["mlflow.source.git.commit"] == tags["git_commit"]


def test_metrics_are_step_indexed_per_stage(tracked_run):
    client, run, _, _ = tracked_run
    total = int(run.data.params["stage2/total_steps"])
    for key in ("stage2/train/loss", "stage2/lr", "stage2/grad_norm", "stage2/tokens_per_s",
                "stage2/train/value_loss"):
        assert _steps(client, run, key) == list(range(1, total + 1)), key
    # CE figures exist only for steps whose batch held a correct row (train_on: correct).
    for key in ("stage2/train/head3_loss", "stage2/weights/ess", "stage2/td/std"):
        steps = _steps(client, run, key)
        assert steps and set(steps) <= set(range(1, total + 1)) and steps == sorted(set(steps)), key
    evaluations = sorted({*range(2, total + 1, 2), total})  # eval_interval 2 and the last step
    assert _steps(client, run, "stage2/val_loss") == evaluations
    best = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "stage2/best_val_loss"),
                                    key=lambda m: m.step)]
    assert best == sorted(best, reverse=True)  # the best so far never gets worse
    stage1_total = int(run.data.params["stage1/total_steps"])
    assert _steps(client, run, "stage1/train/loss") == list(range(1, stage1_total + 1))
    assert "pretrain/train/loss" in run.data.metrics


def test_artifacts_hold_config_plots_report_and_the_model_not_checkpoints(tracked_run):
    client, run, project, _ = tracked_run
    files = set(_artifacts(client, run.info.run_id))
    assert {"config/parameters.yml", "metrics.json", "plots/stage2_loss.png",
            "plots/stage2_head_losses.png", "plots/stage1_loss.png", "plots/pretrain_loss.png",
            "plots/stage2_token_weights.png"} <= files
    assert not any(name.endswith(".pt") for name in files)  # log_checkpoints: none by default
    config = Path(client.download_artifacts(run.info.run_id, "config/parameters.yml", str(project)))
    assert yaml.safe_load(config.read_text())["training"]["stage2"]["beta"] == 0.9
    png = Path(client.download_artifacts(run.info.run_id, "plots/stage2_loss.png", str(project)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_best_model_is_served_from_the_server(tracked_run, mlflow_server, monkeypatch):
    """The pyfunc model went through the basic-auth server's artifact proxy and loads back."""
    _, run, _, _ = tracked_run
    for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
                       "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}.items():
        monkeypatch.setenv(key, value)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    (completion,) = model.predict(["Print the sum of two integers."], params={"max_new_tokens": 4})
    assert isinstance(completion, str)


def test_evaluation_metrics_and_artifacts_reach_the_run(tracked_run):
    client, run, project, _ = tracked_run
    metrics = run.data.metrics
    for name in ("test/pass_at_1", "test/pass_at_2", "test/greedy_pass_at_1", "train/greedy_pass_at_1"):
        assert 0.0 <= metrics[name] <= 1.0, name
        if name.startswith("test/"):
            assert metrics[f"{name}_ci_low"] <= metrics[name] <= metrics[f"{name}_ci_high"], name
    files = set(_artifacts(client, run.info.run_id))
    assert {"evaluation/evaluation.json", "evaluation/completions.jsonl", "evaluation/evaluation.html"} <= files
    summary = json.loads(Path(client.download_artifacts(run.info.run_id, "evaluation/evaluation.json",
                                                         str(project))).read_text())
    assert summary["pass@1"] == pytest.approx(metrics["test/pass_at_1"])


def test_tracking_off_evaluation_creates_no_store(make_project, monkeypatch, tmp_path):
    from weighted_mtp.datasets import MlflowMetricsDataset

    store = tmp_path / "untouched.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    dataset = MlflowMetricsDataset(prefix="")
    dataset._logging_activated = False  # what the project hook does with mlflow.enabled: false
    dataset.save({"test/pass_at_1": {"value": 0.5, "step": 0}})
    assert not store.exists()
