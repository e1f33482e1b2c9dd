"""The two heavy steps of an evaluation: completions from a model, verdicts from the sandbox.

Kept apart from the Kedro nodes so a notebook or a recipe comparison can evaluate any model
directory with the same code (docs/EVALUATION.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from weighted_mtp.config.schema import EvaluationConfig, ExecutionConfig
from weighted_mtp.data.collate import encode_prompts
from weighted_mtp.evaluation.problems import problem_prompt
from weighted_mtp.evaluation.scoring import GREEDY, PROMPT_TOO_LONG, Completion, score_completions
from weighted_mtp.execution import Limits
from weighted_mtp.generation import GenerationStats, generate_text
from weighted_mtp.runtime.distributed import is_main_process
from weighted_mtp.training.progress import progress

logger = logging.getLogger(__name__)

# Fewer new tokens than this cannot hold a program: such a prompt is not generated for.
MIN_ANSWER_TOKENS = 16


def resolve_model_dir(evaluation: EvaluationConfig, best_model_dir: str | Path) -> Path:
    """The directory to evaluate: ``evaluation.model`` when set, else the recipe's best model.

    Raises:
        FileNotFoundError: If the directory has no ``metadata.json`` (names the key to fix).
    """
    directory = Path(evaluation.model) if evaluation.model else Path(best_model_dir)
    if not (directory / "metadata.json").is_file():
        key = "evaluation.model" if evaluation.model else "the recipe's best model (run stage 2 first)"
        raise FileNotFoundError(f"{directory}: no model directory (metadata.json missing); set {key}")
    return directory


def generate_completions(model: Any, tokenizer: Any, problems: Sequence[Mapping[str, Any]],
                         evaluation: EvaluationConfig, samples: bool = True) -> list[Completion]:
    """One greedy completion per problem, plus ``n_samples`` sampled ones when ``samples``.

    A prompt that leaves the model fewer than `MIN_ANSWER_TOKENS` of context gets no
    completion and the status ``prompt_too_long`` (it counts as failed: dropping it would
    flatter pass@k); one that leaves less than ``max_new_tokens`` is answered with what is
    left (a warning counts them). The generator seeds each prompt from the seed of its call
    and its index there, so a run is reproducible and independent of the batch size and of
    the number of ranks.
    """
    prompts = {str(p["name"]): problem_prompt(p) for p in problems}
    budgets = _budgets(model, tokenizer, prompts, evaluation.max_new_tokens)
    greedy_jobs = [(name, GREEDY) for name in prompts]
    sampled_jobs = [(name, s) for name in prompts for s in range(evaluation.n_samples)] if samples else []
    texts: dict[tuple[str, int], Completion] = {}
    stats, started = GenerationStats(), time.monotonic()
    with progress(len(greedy_jobs) + len(sampled_jobs), desc="generating", unit="completion",
                  is_main=is_main_process()) as bar:
        for jobs, greedy in ((greedy_jobs, True), (sampled_jobs, False)):
            for budget in sorted({budgets[name] for name, _ in jobs}, reverse=True):
                group = [job for job in jobs if budgets[job[0]] == budget]
                if budget < MIN_ANSWER_TOKENS:
                    texts.update({job: Completion(*job, "", status=PROMPT_TOO_LONG) for job in group})
                    bar.update(len(group))
                    continue
                outputs = generate_text(
                    model, tokenizer, [prompts[name] for name, _ in group],
                    max_new_tokens=budget,
                    temperature=0.0 if greedy else evaluation.temperature,
                    top_p=1.0 if greedy else evaluation.top_p,
                    top_k=0 if greedy else evaluation.top_k,
                    speculative=evaluation.speculative and greedy,
                    seed=(evaluation.seed + budget) % 2**31,
                    batch_size=evaluation.batch_size,
                    progress=False,
                    stats=stats,
                )
                texts.update({job: Completion(*job, text) for job, text in zip(group, outputs)})
                bar.update(len(group))
    seconds = time.monotonic() - started
    logger.info("Generated %d completions (%d tokens) in %.0f s: %.0f tokens/s",
                len(greedy_jobs) + len(sampled_jobs), stats.new_tokens, seconds,
                stats.new_tokens / max(seconds, 1e-9))
    return [texts[job] for job in greedy_jobs + sampled_jobs]


def _budgets(model: Any, tokenizer: Any, prompts: Mapping[str, str], wanted: int) -> dict[str, int]:
    """New tokens each prompt may get: ``wanted``, or what the model's context leaves."""
    lengths = encode_prompts([(text, "") for text in prompts.values()], tokenizer)
    context = model.args.max_seq_len
    # A shortened budget is rounded down to a multiple of MIN_ANSWER_TOKENS: prompts are
    # generated in one call per budget, and a handful of budgets keeps the batches full.
    budgets = {name: wanted if context - len(ids) >= wanted
               else (context - len(ids)) // MIN_ANSWER_TOKENS * MIN_ANSWER_TOKENS
               for name, ids in zip(prompts, lengths)}
    short = sum(b < wanted for b in budgets.values())
    skipped = sum(b < MIN_ANSWER_TOKENS for b in budgets.values())
    if short:
        logger.warning("%d of %d prompts leave fewer than evaluation.max_new_tokens=%d tokens of the "
                       "model's context (%d); %d of them fewer than %d and count as failed "
                       "(prompt_too_long)", short, len(budgets), wanted, context, skipped, MIN_ANSWER_TOKENS)
    return budgets


def execute(completions: Sequence[Completion], problems: Sequence[Mapping[str, Any]],
            execution: ExecutionConfig) -> list[dict[str, Any]]:
    """Run every completion in the sandbox (progress bar); rows as ``score_completions``."""
    by_name = {str(p["name"]): p for p in problems}
    limits = Limits(time_s=execution.limits.time_s, memory_mb=execution.limits.memory_mb,
                    output_bytes=execution.limits.output_bytes)
    started = time.perf_counter()
    with progress(len(completions), desc="executing", unit="program", is_main=is_main_process()) as bar:
        rows = score_completions(completions, by_name, limits, execution.workers,
                                 execution.allow_weaker_isolation, on_done=lambda: bar.update(1))
    logger.info("executed %d completions in the sandbox in %.0f s (%d workers)", len(rows),
                time.perf_counter() - started, execution.workers)
    return rows
