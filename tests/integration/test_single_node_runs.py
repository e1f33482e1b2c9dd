"""``kedro run --nodes <node>`` works for a data node on its own, from persisted inputs."""

from __future__ import annotations

import json

import pytest

from project_runs import make_scratch_project, run_project

pytestmark = pytest.mark.slow


def test_build_records_runs_alone_after_a_data_run(tmp_path):
    project = make_scratch_project(tmp_path / "p", n_problems=30)
    params = {"mlflow": {"enabled": False}}
    run_project(project, extra_params=params, pipeline_names=["data_processing"])
    records = project / "data" / "03_primary" / "alpaca_records.jsonl"
    first = records.read_text()
    records.unlink()
    run_project(project, extra_params=params, node_names=["build_records"])  # no run_config needed
    assert records.read_text() == first
    assert all("problem_id" in json.loads(line) for line in first.splitlines())
