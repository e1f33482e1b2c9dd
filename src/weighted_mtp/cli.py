"""Project commands added to the ``kedro`` CLI: ``kedro wmtp config`` (the dry run).

A long run should never be the place where a typo in ``conf/<recipe>`` is found. The dry run
builds the same KedroSession ``kedro run`` would, validates the merged parameters and prints
them with the nodes that would run, then exits. Its stdout is YAML only; logs go to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from kedro.framework.cli.utils import _split_params
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from weighted_mtp.config import validate_config
from weighted_mtp.config.requirements import check_environment
from weighted_mtp.config_loader import active_preset, parameter_sources, sources_by_section


@click.group(name="weighted-mtp")
def cli() -> None:
    """weighted-mtp project commands."""


@cli.group(name="wmtp")
def wmtp() -> None:
    """weighted-mtp tools (dry run, …)."""


@wmtp.command(name="config")
@click.option("--env", "-e", default=None, help="Kedro env, e.g. a recipe: baseline, verifiable, rho1.")
@click.option("--params", default="", callback=_split_params, help="Same syntax as `kedro run --params`.")
@click.option("--pipelines", "pipeline_names", default="__default__", help="Comma-separated pipeline names.")
def config_command(env: str | None, params: dict[str, Any], pipeline_names: str) -> None:
    """Print the merged, validated parameters and the nodes that would run; train nothing."""
    try:
        document = dry_run(Path.cwd(), env=env, runtime_params=params, pipeline_names=pipeline_names.split(","))
    except ValueError as error:  # invalid parameters or machine: the message lists every problem
        raise click.ClickException(str(error)) from error
    click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)


def dry_run(
    project_path: Path,
    env: str | None = None,
    runtime_params: dict[str, Any] | None = None,
    pipeline_names: list[str] | None = None,
) -> dict[str, Any]:
    """Resolve what ``kedro run`` would use, without running a node.

    Args:
        project_path: The project root.
        env: The Kedro env (a recipe), or None for the default run env.
        runtime_params: Overrides, as ``kedro run --params`` would pass them.
        pipeline_names: Registered pipelines to list the nodes of.

    Returns:
        ``{"env", "preset", "pipelines", "nodes", "provenance", "value_sources",
        "parameters"}`` ready to dump as YAML. ``provenance`` lists, per top-level key, the
        files (and ``--params``) that contributed to it in merge order; ``value_sources``
        names the file that set each final value.

    Raises:
        ValueError: When the merged parameters are invalid, or this machine lacks what they
            need (every problem listed).
    """
    from kedro.framework.project import pipelines

    names = pipeline_names or ["__default__"]
    with contextlib.redirect_stdout(sys.stderr):
        bootstrap_project(project_path)
        with KedroSession.create(project_path=project_path, env=env, runtime_params=runtime_params) as session:
            context = session.load_context()
            config = validate_config(context.params)
            check_environment(config)
            selected = [pipelines[name] for name in names]
            conf_source = Path(context.config_loader.conf_source)
    nodes = [node.name for pipe in selected for node in pipe.nodes]
    sources = parameter_sources(conf_source, env or "local", runtime_params)
    return {
        "env": env or "local",
        "preset": active_preset(),
        "pipelines": names,
        "nodes": list(dict.fromkeys(nodes)),
        "provenance": sources_by_section(sources),
        "value_sources": sources,
        "parameters": config.raw,
    }
