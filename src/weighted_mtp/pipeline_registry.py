"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``find_pipelines`` may import only the pipelines named on the command line, so
    ``__default__`` is the sum of whatever was found rather than a fixed list of keys.
    A pipeline module that fails to import raises (Kedro's default is a warning, after
    which ``kedro run`` silently runs the other pipelines and reports success).
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
