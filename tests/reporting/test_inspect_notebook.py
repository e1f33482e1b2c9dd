"""After a tiny `kedro run`: the token-weight report files, their MLflow artifacts, the
notebook top to bottom, and the report with tracking switched off."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import nbformat
import pytest
from nbclient import NotebookClient

from project_runs import ROOT, make_scratch_project, run_project

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "notebooks" / "inspect_run.ipynb"
REPORTS = Path("data/08_reporting/default")


def _run_ids() -> set[str]:
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {run.info.run_id for run in client.search_runs(experiments)} if experiments else set()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    workdir = make_scratch_project(tmp_path_factory.mktemp("inspect"))
    before = _run_ids()
    run_project(workdir)
    return workdir, _run_ids() - before


def test_run_writes_the_page_and_the_value_plots(finished_run):
    workdir, _ = finished_run
    page = (workdir / REPORTS / "token_weights.html").read_text()
    assert page.count('class="tok"') > 10
    assert 'class="correct"' in page and 'class="incorrect"' in page
    pngs = sorted(p.name for p in (workdir / REPORTS / "token_values").glob("*.png"))
    assert pngs[0] == "00_overview.png" and len(pngs) >= 3


def test_report_files_are_mlflow_artifacts_of_the_run(finished_run):
    _, new_runs = finished_run
    assert len(new_runs) == 1
    client = mlflow.MlflowClient()
    run_id = next(iter(new_runs))
    paths = {artifact.path for artifact in client.list_artifacts(run_id, "reports")}
    assert paths == {"reports/token_weights.html", "reports/token_values"}
    pngs = {artifact.path for artifact in client.list_artifacts(run_id, "reports/token_values")}
    assert "reports/token_values/00_overview.png" in pngs


def test_notebook_runs_top_to_bottom(finished_run):
    workdir, _ = finished_run
    (workdir / "notebooks").mkdir(exist_ok=True)
    notebook_path = workdir / "notebooks" / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook_path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    html = "".join(str(output.get("data", {}).get("text/html", "")) for output in outputs)
    assert 'class="tok"' in html  # the token-weight page, inline
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 3  # curves + 2 PNGs


def test_report_without_tracking_writes_files_and_no_mlflow_run(finished_run):
    """With ``mlflow.enabled: false`` the MlflowArtifactDataset wrappers only save locally
    (the tracking hook switches their logging off); nothing starts a stray MLflow run."""
    workdir, _ = finished_run
    page = workdir / REPORTS / "token_weights.html"
    page.unlink()
    before = _run_ids()
    run_project(workdir, extra_params={"mlflow": {"enabled": False}}, node_names=["report_token_weights"])
    assert page.is_file() and (workdir / REPORTS / "token_values" / "00_overview.png").is_file()
    assert _run_ids() == before and mlflow.active_run() is None
