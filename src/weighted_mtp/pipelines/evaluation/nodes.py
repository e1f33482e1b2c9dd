"""Nodes of the evaluation pipeline: thin adapters over :mod:`weighted_mtp.evaluation`.

Three steps with persisted outputs, so each can be re-run alone: generation (the slow,
accelerator part) → execution in the sandbox → figures, report and MLflow metrics.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from weighted_mtp.config import EvaluationConfig, ExecutionConfig, PolicyModelConfig, validate_block
from weighted_mtp.data import load_tokenizer
from weighted_mtp.evaluation import (
    Completion,
    format_table,
    overlapping_problems,
    render_report,
    sample_training_problems,
    summarise,
)
from weighted_mtp.evaluation.run import execute, generate_completions, resolve_model_dir
from weighted_mtp.evaluation.summary import GREEDY_METRIC
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.runtime.device import resolve_device, resolve_dtype
from weighted_mtp.runtime.distributed import is_main_process

logger = logging.getLogger(__name__)

TEST, TRAIN = "test", "train"


def generate_test_completions(
    best_model: Path, test_problems: list[dict[str, Any]], raw_problems: list[dict[str, Any]],
    train_records: list[dict[str, Any]], validation_records: list[dict[str, Any]], evaluation: dict, policy: dict,
) -> list[dict[str, Any]]:
    """Greedy + sampled completions for every test problem, greedy ones for a fixed sample
    of training problems (the sanity line). Refuses test problems that training saw."""
    evaluation = validate_block(EvaluationConfig, evaluation, "evaluation")
    if not evaluation.enabled:
        logger.info("evaluation.enabled is false: no completions generated")
        return []
    leaked = overlapping_problems(test_problems, train_records, validation_records)
    if leaked:
        raise ValueError(f"test_problems: {len(leaked)} test problem(s) also appear in the "
                         f"training/validation records: {', '.join(leaked[:10])}"
                         f"{' …' if len(leaked) > 10 else ''}. Evaluate on held-out problems only.")
    if not test_problems:
        raise ValueError("test_problems: no test problems (set dataset.test_fraction)")
    model_dir = resolve_model_dir(evaluation, best_model)
    model, tokenizer = _load(model_dir, validate_block(PolicyModelConfig, policy, "models.policy"))
    problems = test_problems[: evaluation.max_problems] if evaluation.max_problems else test_problems
    logger.info("evaluating %s on %d test problems (%d samples at T=%s + greedy)", model_dir,
                len(problems), evaluation.n_samples, evaluation.temperature)
    started = time.perf_counter()
    rows = _rows(generate_completions(model, tokenizer, problems, evaluation), TEST)
    sanity = sample_training_problems(raw_problems, train_records, evaluation.train_sample, evaluation.seed)
    if sanity:
        rows += _rows(generate_completions(model, tokenizer, sanity, evaluation, samples=False), TRAIN)
    for row in rows:
        row["model"] = str(model_dir)
    logger.info("generated %d completions in %.0f s", len(rows), time.perf_counter() - started)
    return rows


def score_test_completions(
    generated_completions: list[dict[str, Any]], test_problems: list[dict[str, Any]],
    raw_problems: list[dict[str, Any]], execution: dict,
) -> list[dict[str, Any]]:
    """Run every completion against all tests of its problem in the sandbox (rank 0 only:
    under torchrun every rank holds all completions, and one execution is enough)."""
    if not is_main_process():
        return []
    problems = {p["name"]: p for p in raw_problems} | {p["name"]: p for p in test_problems}
    completions = [Completion(r["problem"], int(r["sample"]), r["completion"], r.get("status"))
                   for r in generated_completions]
    scored = execute(completions, list(problems.values()), validate_block(ExecutionConfig, execution, "execution"))
    for row, generated in zip(scored, generated_completions):
        row["split"], row["model"] = generated["split"], generated.get("model")
    return scored


def summarise_evaluation(completions: list[dict[str, Any]], evaluation: dict) -> tuple[dict, dict, str]:
    """``evaluation.json``, the MLflow metrics (``test/pass_at_1`` …) and the HTML report."""
    evaluation = validate_block(EvaluationConfig, evaluation, "evaluation")
    if not completions:
        return {"enabled": False}, {}, "<!doctype html><p>Evaluation was switched off (evaluation.enabled: false).</p>"
    test_rows = [r for r in completions if r["split"] == TEST]
    train_rows = [r for r in completions if r["split"] == TRAIN]
    k_values = [k for k in evaluation.k if k <= evaluation.n_samples]
    summary = {"model": test_rows[0].get("model") if test_rows else None,
               "temperature": evaluation.temperature, "top_p": evaluation.top_p,
               "max_new_tokens": evaluation.max_new_tokens,
               **summarise(test_rows, k_values, evaluation.bootstrap_resamples, evaluation.seed)}
    if train_rows:
        summary["train_greedy_pass@1"] = summarise(train_rows, [], evaluation.bootstrap_resamples,
                                                   evaluation.seed)[GREEDY_METRIC]
        summary["train_n_problems"] = len({r["problem"] for r in train_rows})
    logger.info("pass@k on the held-out test problems:\n%s%s", format_table(summary),
                f"\ntrain_greedy_pass@1 (sanity, {summary['train_n_problems']} training problems): "
                f"{summary['train_greedy_pass@1']:.3f}" if train_rows else "")
    return summary, mlflow_metrics(summary), render_report(summary, test_rows)


def mlflow_metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """MLflow names for the figures: ``@`` is not allowed there, so ``pass@1`` becomes
    ``test/pass_at_1`` and its interval ``test/pass_at_1_ci_low``/``_ci_high``."""
    metrics: dict[str, dict[str, float]] = {}
    for metric, (low, high) in summary["ci95"].items():
        name = "test/" + metric.replace("@", "_at_")
        for suffix, value in (("", summary[metric]), ("_ci_low", low), ("_ci_high", high)):
            metrics[name + suffix] = {"value": float(value), "step": 0}
    if "train_greedy_pass@1" in summary:
        metrics["train/greedy_pass_at_1"] = {"value": float(summary["train_greedy_pass@1"]), "step": 0}
    return metrics


def _load(model_dir: Path, policy: PolicyModelConfig) -> tuple[Any, Any]:
    """The model on the configured device and the tokenizer that came with it."""
    device = resolve_device(policy.device)
    model = MetaLlamaMTPAdapter.from_pretrained(model_dir, device=device,
                                                dtype=resolve_dtype(policy.dtype, device))  # its own value head kind
    tokenizer_dir = model_dir / "tokenizer"
    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no tokenizer/ folder next to the weights; evaluation "
                                "generates with the model's own tokenizer")
    return model.eval(), load_tokenizer(tokenizer_dir)


def _rows(completions: list[Completion], split: str) -> list[dict[str, Any]]:
    return [{"problem": c.problem, "sample": c.sample, "completion": c.text, "split": split,
             **({"status": c.status} if c.status else {})} for c in completions]
