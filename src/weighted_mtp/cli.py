"""Project commands added to the ``kedro`` CLI: ``kedro wmtp config`` (the dry run),
``kedro wmtp generate`` (completions from a trained model, docs/GENERATION.md) and
``kedro wmtp export-hf`` / ``import-hf`` (Hugging Face folders, docs/MODEL.md).

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

from weighted_mtp.config import PolicyModelConfig, validate_config
from weighted_mtp.config.requirements import check_environment
from weighted_mtp.config_loader import active_preset, parameter_sources, sources_by_section


@click.group(name="weighted-mtp")
def cli() -> None:
    """weighted-mtp project commands."""


@cli.group(name="wmtp")
def wmtp() -> None:
    """weighted-mtp tools (dry run, …)."""


@wmtp.command(name="generate")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory, e.g. data/07_model_output/best_model/<experiment>.")
@click.option("--prompt", "prompts", multiple=True, help="An instruction (repeatable).")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="*.jsonl records (instruction, input) or one instruction per line.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Tokenizer directory (default: <model>/tokenizer).")
@click.option("--max-new-tokens", default=256, show_default=True, type=int)
@click.option("--temperature", default=0.0, show_default=True, type=float, help="0 = greedy.")
@click.option("--top-p", default=1.0, show_default=True, type=float)
@click.option("--top-k", default=0, show_default=True, type=int, help="0 = no top-k.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--speculative", is_flag=True, help="Self-speculative greedy decoding with the MTP heads.")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--dtype", default=None, help="float32 (default) or bfloat16.")
@click.option("--jsonl", is_flag=True, help="Print one JSON object per completion.")
def generate_command(model_dir: Path, prompts: tuple[str, ...], prompts_file: Path | None,
                     tokenizer_dir: Path | None, device: str, dtype: str | None, jsonl: bool,
                     **options: Any) -> None:
    """Complete instructions with the training prompt template; print the responses."""
    from weighted_mtp.generation import generate_text
    from weighted_mtp.generation.command import format_completions, load_for_generation, read_instructions

    try:
        instructions = read_instructions(prompts, prompts_file)
        model, tokenizer = load_for_generation(model_dir, tokenizer_dir, device, dtype)
        completions = generate_text(model, tokenizer, instructions, progress=len(instructions) > 1, **options)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_completions(instructions, completions, jsonl))


@wmtp.command(name="export-hf")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--max-shard-gb", default=5.0, show_default=True, type=float,
              help="Largest model-*.safetensors shard.")
def export_hf_command(model_dir: Path, out_dir: Path, max_shard_gb: float) -> None:
    """Write MODEL_DIR as a Hugging Face LlamaForCausalLM folder (head 0 + tokenizer; the
    other heads and the value head in mtp_heads.safetensors), docs/MODEL.md."""
    from weighted_mtp.models.hf_interop import export_hf

    try:  # progress: one log line per block (Kedro's logging, on stderr)
        click.echo(str(export_hf(model_dir, out_dir, max_shard_bytes=int(max_shard_gb * 1e9))))
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error


@wmtp.command(name="import-hf")
@click.argument("hf_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--n-future-tokens", type=int, default=None,
              help="Heads of the MTP model (default: the number in mtp_heads.json).")
@click.option("--value-head", type=click.Choice(["linear", "mlp", "block", "none"]), default=None,
              help=f"Value head (default: mtp_heads.json's, else a fresh "
                   f"'{PolicyModelConfig.model_fields['value_head'].default}', conf/base's "
                   "models.policy.value_head); none: each recipe initialises its own.")
@click.option("--model-name", default=None, help="Name stored in metadata.json.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of a fresh value head.")
def import_hf_command(hf_dir: Path, out_dir: Path, n_future_tokens: int | None,
                      value_head: str | None, model_name: str | None, seed: int) -> None:
    """Turn a Hugging Face LlamaForCausalLM folder HF_DIR into a model directory OUT_DIR
    (usable as models.policy.path), docs/MODEL.md."""
    from weighted_mtp.models.hf_interop import import_hf

    try:
        click.echo(str(import_hf(hf_dir, out_dir, n_future_tokens=n_future_tokens,
                                 value_head=value_head, model_name=model_name, seed=seed)))
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error


@wmtp.command(name="compare")
@click.option("--recipes", default="baseline,verifiable,rho1,next_token", show_default=True,
              help="Comma-separated recipes; the baseline is the control of the differences.")
@click.option("--seeds", "n_seeds", default=3, show_default=True, type=int, help="Seeds 0..N-1.")
@click.option("--seed-list", default=None, help="Explicit seeds, e.g. 0,1,2 (overrides --seeds).")
@click.option("--preset", default=None, help="Scale preset of every run (default: $WMTP_PRESET, else micro).")
@click.option("--params", default="", help="Extra `kedro run --params` for every run, e.g. training.stage2.n_epochs=1.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: data/08_reporting/comparison).")
@click.option("--mlflow/--no-mlflow", default=True, show_default=True,
              help="Track the runs as children of one MLflow parent run.")
@click.option("--mlflow-experiment", default="weighted-mtp/compare", show_default=True)
@click.option("--bootstrap-resamples", default=1000, show_default=True, type=int)
def compare_command(recipes: str, n_seeds: int, seed_list: str | None, preset: str | None, params: str,
                    out_dir: Path | None, mlflow: bool, mlflow_experiment: str, bootstrap_resamples: int) -> None:
    """Train (or reuse) each recipe at each seed, evaluate on the test problems, and write
    a pass@k table with paired differences to the baseline."""
    from weighted_mtp.comparison import run_comparison

    try:
        seeds = [int(x) for x in seed_list.split(",")] if seed_list else list(range(n_seeds))
        extra = dict(_pairs(params))
        run_comparison(Path.cwd(), recipes=[r.strip() for r in recipes.split(",") if r.strip()], seeds=seeds,
                       preset=preset or active_preset(), params=extra, out_dir=out_dir, mlflow=mlflow,
                       mlflow_experiment=mlflow_experiment, bootstrap_resamples=bootstrap_resamples,
                       report=lambda line: click.echo(line, err=True))
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error


def _pairs(params: str) -> list[tuple[str, str]]:
    """``a.b=1,c=x`` → ``[("a.b", "1"), ("c", "x")]`` (values stay strings: Kedro parses them)."""
    pairs = []
    for item in filter(None, (part.strip() for part in params.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--params: expected key=value, found {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


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
