"""How tracking is switched and configured: parameters, environment, URIs, credentials."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from weighted_mtp.hooks import export_credentials, mlflow_conf
from weighted_mtp.tracking.artifacts import checkpoint_files
from weighted_mtp.tracking.options import is_main_process, tracking_options
from weighted_mtp.tracking.run_record import flatten_params
from weighted_mtp.tracking.server import anchor_sqlite_uri, local_artifact_location, resolve_tracking_uri


def _params(**mlflow):
    return {"project": {"recipe": "rho1"}, "mlflow": {"enabled": True, **mlflow}}


def test_experiment_follows_the_recipe_unless_named():
    assert tracking_options(_params(), env={}).experiment_name == "weighted-mtp/rho1"
    assert tracking_options(_params(), env={"MLFLOW_EXPERIMENT_NAME": "mine"}).experiment_name == "mine"
    named = tracking_options(_params(experiment_name="sweep"), env={"MLFLOW_EXPERIMENT_NAME": "mine"})
    assert named.experiment_name == "sweep"  # --params / parameters.yml win


def test_run_name_from_params_then_environment():
    assert tracking_options(_params(), env={}).run_name is None
    assert tracking_options(_params(), env={"WMTP_MLFLOW_RUN_NAME": "nightly"}).run_name == "nightly"
    assert tracking_options(_params(run_name="beta-2"), env={"WMTP_MLFLOW_RUN_NAME": "x"}).run_name == "beta-2"


def test_tracking_is_off_when_disabled_or_not_rank_zero():
    assert tracking_options(_params(), env={}).enabled
    assert not tracking_options(_params(enabled=False), env={}).enabled
    assert not tracking_options(_params(), env={"RANK": "1"}).enabled
    assert is_main_process({"RANK": "0"}) and is_main_process({})


def test_relative_sqlite_store_is_anchored_at_the_project(tmp_path):
    assert resolve_tracking_uri(None, tmp_path, env={}) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///runs/m.db", tmp_path, env={}) == f"sqlite:///{tmp_path}/runs/m.db"
    assert resolve_tracking_uri(None, tmp_path, env={"MLFLOW_TRACKING_URI": "http://h:5000"}) == "http://h:5000"
    assert anchor_sqlite_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert local_artifact_location(f"sqlite:///{tmp_path}/mlflow.db", "weighted-mtp/rho1") == (
        (tmp_path / "mlruns" / "weighted-mtp" / "rho1").as_uri())
    assert local_artifact_location("http://h:5000", "x") is None  # the server decides


def test_kedro_mlflow_gets_the_experiment_and_store_of_this_run(tmp_path):
    options = tracking_options(_params(), env={})
    loaded = {"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db"},
              "tracking": {"experiment": {"name": "weighted-mtp"}}}
    conf = mlflow_conf(loaded, options, tmp_path)
    assert conf["tracking"]["experiment"]["name"] == "weighted-mtp/rho1"
    assert conf["server"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert loaded["tracking"]["experiment"]["name"] == "weighted-mtp"  # the input is not mutated


def test_missing_credentials_entry_is_a_clear_error():
    context = SimpleNamespace(env="verifiable", config_loader={"credentials": {}})
    with pytest.raises(RuntimeError, match="server.credentials: 'mlflow_server'.*conf/local is only read"):
        export_credentials(context, {"server": {"credentials": "mlflow_server"}})


def test_credentials_entry_is_exported(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    context = SimpleNamespace(env=None, config_loader={"credentials": {
        "mlflow_server": {"MLFLOW_TRACKING_USERNAME": "alice"}}})
    export_credentials(context, {"server": {"credentials": "mlflow_server"}})
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"


def test_empty_credentials_leave_mlflow_variables_alone(monkeypatch):
    """conf/base/credentials.yml resolves an unset WMTP_MLFLOW_PASSWORD to "": not exported."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "from-the-environment")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    context = SimpleNamespace(env="verifiable", config_loader={"credentials": {
        "mlflow_server": {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": ""}}})
    export_credentials(context, {"server": {"credentials": "mlflow_server"}})
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "from-the-environment"


def test_kedro_mlflow_is_not_given_the_credentials_entry(tmp_path):
    """The plugin would export the empty values too; this project's hook exports them."""
    loaded = {"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db", "credentials": "mlflow_server"}}
    assert mlflow_conf(loaded, tracking_options(_params(), env={}), tmp_path)["server"]["credentials"] is None
    assert loaded["server"]["credentials"] == "mlflow_server"


def test_params_are_flattened_with_dots():
    nested = {"training": {"stage2": {"beta": 0.9, "td_ema": {"enabled": False}}}, "tags": [1, 2]}
    assert flatten_params(nested) == {"training.stage2.beta": 0.9, "training.stage2.td_ema.enabled": False,
                                      "tags": [1, 2]}


def test_checkpoint_policy_best_all_none(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    names = ["checkpoint_stage2_best.pt", "checkpoint_stage2_final.pt", "checkpoint_stage2_epoch_1.pt",
             "checkpoint_stage1_best.pt"]
    for name in names:
        (folder / name).write_bytes(b"x")
    summary = {"stage": "stage2", "best_checkpoint": str(folder / names[0]),
               "final_checkpoint": str(folder / names[1])}
    assert checkpoint_files(summary, "best", since=0) == [folder / names[0]]
    assert [p.name for p in checkpoint_files(summary, "all", since=0)] == sorted(names[:3])
    assert checkpoint_files(summary, "all", since=2**40) == []  # older than the run: not this run's
    assert checkpoint_files(summary, "none", since=0) == []
    assert checkpoint_files({"skipped": True, "recipe": "baseline"}, "all", since=0) == []


def test_sharded_checkpoints_are_uploaded_once_complete(tmp_path):
    """A sharded run's ``.dcp`` folders count once their COMPLETE marker is written."""
    best, cut = tmp_path / "checkpoint_stage2_best.dcp", tmp_path / "checkpoint_stage2_last.dcp"
    for folder in (best, cut):
        folder.mkdir()
        (folder / "__0_0.distcp").write_bytes(b"x")
    (best / "COMPLETE").write_text("{}")
    summary = {"stage": "stage2", "best_checkpoint": str(best), "final_checkpoint": None}
    assert checkpoint_files(summary, "best", since=0) == [best]
    assert checkpoint_files(summary, "all", since=0) == [best]


def test_the_model_is_logged_and_checkpoints_are_not_by_default():
    options = tracking_options(_params(), env={})
    assert options.log_model and options.register_as is None and options.log_checkpoints == "none"
    assert tracking_options(_params(register_as="wmtp-coder"), env={}).register_as == "wmtp-coder"
    assert not tracking_options(_params(log_model=False), env={}).log_model


def test_registering_needs_the_logged_model():
    from weighted_mtp.config.schema import MlflowConfig

    with pytest.raises(ValueError, match="register_as: 'wmtp' registers the logged model, but log_model is false"):
        MlflowConfig(log_model=False, register_as="wmtp")
    assert MlflowConfig().log_checkpoints == "none" and MlflowConfig().log_model


def test_pyfunc_input_becomes_instruction_strings():
    import pandas as pd

    from weighted_mtp.tracking.mlflow_model import instructions_of

    assert instructions_of(pd.DataFrame({0: ["a", "b"]})) == ["a", "b"]  # what pyfunc hands over
    assert instructions_of(["a"]) == ["a"] and instructions_of("a") == ["a"]
    assert instructions_of(pd.Series(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match="expected instruction strings; item 1 is int"):
        instructions_of(["a", 3])


def test_a_prompt_that_fills_the_context_is_named():
    import torch

    from weighted_mtp.data import train_bpe_tokenizer
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.models.micro import micro_args
    from weighted_mtp.tracking.mlflow_model import complete

    tokenizer = train_bpe_tokenizer(["print(1)\n"] * 20, vocab_size=300)
    torch.manual_seed(0)
    model = MetaLlamaMTPAdapter(micro_args(len(tokenizer), dim=32, n_layers=2, n_heads=2, n_kv_heads=1,
                                           n_future_tokens=2, max_seq_len=512))
    with pytest.raises(ValueError, match=r"instruction 1: its prompt is \d+ tokens and the model's context is 512"):
        complete(model, tokenizer, ["x", "a long instruction " * 40])
    short, = complete(model, tokenizer, ["x"], max_new_tokens=1000)  # the budget shrinks to what is left
    assert isinstance(short, str)
