"""Evaluation by execution inside the real project: after the default run, and on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession

from project_runs import TINY_PARAMS, make_scratch_project, merge, read_json, run_project, working_directory

pytestmark = pytest.mark.slow

EVALUATION = Path("data/08_reporting/default/evaluation.json")
# Room for the longest test prompt (about 370 tokens here) and an answer, so completions
# are really generated (TINY_PARAMS' 384-token context would leave most prompts none).
LONG_CONTEXT = {"models": {"policy": {"micro": {"max_seq_len": 640}}}, "dataset": {"max_length": 640}}
COMPLETIONS = Path("data/07_model_output/default/completions.jsonl")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_scratch_project(tmp_path_factory.mktemp("evaluation"), n_problems=40)
    run_project(workdir, extra_params=LONG_CONTEXT)
    return workdir


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_default_run_ends_with_pass_at_k(trained: Path) -> None:
    summary = read_json(trained / EVALUATION)
    test_problems = read_rows(trained / "data/05_model_input/test_problems.jsonl")
    for key in ("model", "n_problems", "n_samples", "temperature", "pass@1", "pass@2",
                "greedy_pass@1", "ci95", "per_family", "train_greedy_pass@1", "failures"):
        assert key in summary, key
    assert summary["n_problems"] == len(test_problems) and summary["n_samples"] == 2
    assert summary["model"].endswith("best_model/default")
    rows = read_rows(trained / COMPLETIONS)
    test_rows = [r for r in rows if r["split"] == "test"]
    assert len(test_rows) == 3 * len(test_problems)  # 2 samples + greedy each
    assert {r["sample"] for r in test_rows} == {-1, 0, 1}
    assert {r["problem"] for r in test_rows} == {p["name"] for p in test_problems}
    assert all(set(r) >= {"problem", "family", "sample", "completion", "status", "passed"} for r in rows)
    assert "prompt_too_long" not in {r["status"] for r in rows}  # every prompt got an answer
    assert sum(summary["failures"].values()) == len(test_rows)
    assert (trained / "data/08_reporting/default/evaluation.html").read_text().startswith("<!doctype html>")


def test_evaluation_pipeline_runs_alone_on_a_given_model(trained: Path, tmp_path: Path) -> None:
    model = trained / "data/07_model_output/best_model/default"
    run_project(trained, extra_params={**LONG_CONTEXT, "evaluation": {"model": str(model), "n_samples": 3,
                                                                      "k": [1, 3]}},
                pipeline_names=["evaluation"])
    summary = read_json(trained / EVALUATION)
    assert summary["n_samples"] == 3 and "pass@3" in summary
    assert summary["model"] == str(model)


def test_bad_evaluation_input_fails_before_generation(trained: Path) -> None:
    with pytest.raises(Exception, match=r"evaluation.k: every k must be in \[1, n_samples=2\], found 5"):
        run_project(trained, extra_params={"evaluation": {"k": [1, 5]}}, pipeline_names=["evaluation"])
    with pytest.raises(Exception, match="no model directory"):
        run_project(trained, extra_params={"evaluation": {"model": str(trained / "nowhere")}},
                    pipeline_names=["evaluation"])
    with pytest.raises(Exception, match="evaluation.n_sample.*did you mean 'n_samples'"):
        run_project(trained, extra_params={"evaluation": {"n_sample": 3}}, pipeline_names=["evaluation"])


def test_test_problems_that_training_saw_are_refused(trained: Path) -> None:
    test_file = trained / "data/05_model_input/test_problems.jsonl"
    original = test_file.read_text()
    train_problem = read_rows(trained / "data/05_model_input/train.jsonl")[0]["problem_id"]
    raw = {p["name"]: p for p in read_rows(trained / "data/01_raw/code_problems.jsonl")}
    try:
        test_file.write_text(original + json.dumps(raw[train_problem]) + "\n")
        with pytest.raises(Exception, match=f"also appear in the training/validation records: {train_problem}"):
            run_project(trained, pipeline_names=["evaluation"])
    finally:
        test_file.write_text(original)
