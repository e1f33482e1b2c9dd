"""The whole-config check before the first node, through a real KedroSession's context."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from weighted_mtp import hooks
from weighted_mtp.config_loader import RUNTIME_SOURCE

ROOT = Path(__file__).resolve().parents[2]


def _hook(runtime_params: dict) -> hooks.ConfigHooks:
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env="verifiable", runtime_params=runtime_params) as session:
        context = session.load_context()
    hook = hooks.ConfigHooks()
    hook.after_context_created(context)
    return hook


def test_a_problem_names_the_file_or_params_that_set_it(monkeypatch):
    monkeypatch.delenv("WMTP_PRESET", raising=False)
    hook = _hook({"training": {"stage2": {"beta": -1.0}}, "evaluation": {"n_samples": 4}})
    with pytest.raises(ValueError) as excinfo:
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
    lines = str(excinfo.value).splitlines()
    assert f"  - training.stage2.beta: must be > 0, found -1.0 (set in {RUNTIME_SOURCE})" in lines
    assert "  - evaluation.k: every k must be in [1, n_samples=4], found 5 (set in conf/presets/micro/parameters.yml)" in lines


def test_a_failure_to_find_the_files_does_not_hide_the_problems(monkeypatch):
    monkeypatch.delenv("WMTP_PRESET", raising=False)
    hook = _hook({"training": {"stage2": {"beta": -1.0}}})

    def broken(*args, **kwargs):
        raise OSError("conf unreadable")

    monkeypatch.setattr(hooks, "parameter_sources", broken)
    with pytest.raises(ValueError, match=r"training.stage2.beta: must be > 0, found -1.0$"):
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
