"""The best model of a tracked run as an MLflow Model: a pyfunc that writes code.

One tiny real run (data, stage 1, stage 2) against a sqlite store in a temporary folder,
with ``mlflow.register_as`` and ``.pt`` checkpoints on; then the model is loaded back the
way a user would, by run URI and by registry name.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from tracking_helpers import TINY_PARAMS, run_session

from weighted_mtp.tracking.mlflow_model import EXAMPLE_INSTRUCTION

pytestmark = pytest.mark.slow

REGISTERED = "weighted-mtp-tiny"
PROMPTS = ["Write a function that returns the sum of two integers.", "Read a line and print it reversed."]


@pytest.fixture(scope="module")
def logged_run(project_template, tmp_path_factory):
    """``(client, run, store uri)`` of a tiny run that logged and registered its model."""
    from tracking_helpers import copy_project

    project = copy_project(project_template, tmp_path_factory.mktemp("model") / "project")
    store = f"sqlite:///{project / 'store.db'}"
    patch = pytest.MonkeyPatch()
    try:
        for key, value in {"MLFLOW_TRACKING_URI": store, "WMTP_PROGRESS": "0", "WMTP_DATA_ROOT": str(project / "data"),
                           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}.items():
            patch.setenv(key, value)
        for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.delenv(key, raising=False)
        params = copy.deepcopy(TINY_PARAMS) | {"mlflow": {"run_name": "tiny-model", "register_as": REGISTERED,
                                                          "log_checkpoints": "best"}}
        run_session(project, params=params, pipelines=["data_processing", "stage1", "stage2"])
        client = MlflowClient(store)
        experiment = client.get_experiment_by_name("weighted-mtp/verifiable")
        (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tiny-model'")
        yield client, run, store
    finally:
        patch.undo()


def test_logged_model_generates_code_from_instructions(logged_run, monkeypatch):
    client, run, store = logged_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    completions = model.predict(PROMPTS)
    assert isinstance(completions, list) and len(completions) == 2
    assert all(isinstance(text, str) for text in completions)
    assert model.predict(PROMPTS[:1]) == completions[:1]  # greedy by default: the same text again
    short = model.predict(PROMPTS[:1], params={"max_new_tokens": 2})[0]
    assert completions[0].startswith(short)  # greedy with a smaller budget: a prefix of the long one


def test_logged_model_has_signature_example_and_the_model_directory(logged_run):
    client, run, _ = logged_run
    info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    signature = info.signature
    assert [spec.type.name for spec in signature.inputs.inputs] == ["string"]
    params = {spec.name: spec.default for spec in signature.params.params}
    assert params == {"max_new_tokens": TINY_PARAMS["evaluation"]["max_new_tokens"], "temperature": 0.0,
                      "top_p": 1.0, "top_k": 0, "seed": 0}
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    (model_dir,) = (local / "artifacts").iterdir()  # the model_dir artifact: the exported best model
    assert (model_dir / "metadata.json").is_file() and (model_dir / "tokenizer" / "tokenizer.json").is_file()
    assert (local / "code" / "weighted_mtp" / "generation").is_dir()
    assert EXAMPLE_INSTRUCTION in (local / "input_example.json").read_text()


def test_model_is_registered_and_loads_by_name(logged_run, monkeypatch):
    client, run, store = logged_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    (version,) = client.search_model_versions(f"name = '{REGISTERED}'")
    assert version.run_id == run.info.run_id
    by_name = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/{version.version}")
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert by_name.predict(PROMPTS) == by_run.predict(PROMPTS)


def test_checkpoints_are_uploaded_only_when_asked(logged_run):
    client, run, _ = logged_run
    files = {item.path for folder in ("checkpoints/stage1", "checkpoints/stage2")
             for item in client.list_artifacts(run.info.run_id, folder)}
    assert files == {"checkpoints/stage1/checkpoint_stage1_best.pt", "checkpoints/stage2/checkpoint_stage2_best.pt"}


def test_model_loads_without_the_project_installed(logged_run, tmp_path):
    """The package travels with the model: a Python without this checkout or the editable
    install (``-S``: no .pth files) loads it from the model's own ``code/``."""
    _, run, store = logged_run
    site_packages = [path for path in sys.path if path.endswith("site-packages")]
    script = "\n".join([
        f"import sys; sys.path.extend({site_packages!r})",
        "import mlflow",
        f"model = mlflow.pyfunc.load_model('runs:/{run.info.run_id}/model')",
        "import weighted_mtp; print(weighted_mtp.__file__)",  # after load_model put code/ on sys.path
        "print(model.predict(['Print 1.'], params={'max_new_tokens': 3}))",
    ])
    done = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"MLFLOW_TRACKING_URI": store, "PATH": "/usr/bin:/bin",
                                            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    where, output = done.stdout.strip().splitlines()[-2:]
    assert "/code/weighted_mtp/" in where
    assert output.startswith("['")
