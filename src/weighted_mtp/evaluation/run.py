"""One evaluation, start to finish: load the model, generate, execute, summarise.

Kept apart from the Kedro nodes so a notebook or the recipe comparison can evaluate any
model directory with the same code (docs/EVALUATION.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from weighted_mtp.config.schema import EvaluationConfig, ExecutionConfig
from weighted_mtp.data.collate import encode_prompts
from weighted_mtp.evaluation.problems import problem_prompt
from weighted_mtp.evaluation.scoring import GREEDY, Completion, score_completions
from weighted_mtp.execution import Limits
from weighted_mtp.generation import generate_text
from weighted_mtp.runtime.distributed import is_main_process

logger = logging.getLogger(__name__)


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

    The generator seeds each prompt from ``(evaluation.seed, its index)``, so a run is
    reproducible and independent of the batch size and of the number of ranks.
    """
    prompts = {str(p["name"]): problem_prompt(p) for p in problems}
    greedy_jobs = [(name, GREEDY) for name in prompts]
    sampled_jobs = [(name, s) for name in prompts for s in range(evaluation.n_samples)] if samples else []
    budget = _token_budget(model, tokenizer, list(prompts.values()), evaluation.max_new_tokens)
    completions: list[Completion] = []
    for jobs, greedy in ((greedy_jobs, True), (sampled_jobs, False)):
        if not jobs:
            continue
        texts = generate_text(
            model, tokenizer, [prompts[name] for name, _ in jobs],
            max_new_tokens=budget,
            temperature=0.0 if greedy else evaluation.temperature,
            top_p=1.0 if greedy else evaluation.top_p,
            top_k=0 if greedy else evaluation.top_k,
            speculative=evaluation.speculative and greedy,
            seed=evaluation.seed,
            batch_size=evaluation.batch_size,
            progress=is_main_process(),
        )
        completions += [Completion(name, sample, text) for (name, sample), text in zip(jobs, texts)]
    return completions


def _token_budget(model: Any, tokenizer: Any, prompts: Sequence[str], wanted: int) -> int:
    """``max_new_tokens``, lowered so the longest prompt plus its answer fit the model's
    context (a warning says so), instead of failing after hours of generation."""
    longest = max(len(ids) for ids in encode_prompts([(p, "") for p in prompts], tokenizer))
    room = model.args.max_seq_len - longest
    if room < 1:
        raise ValueError(f"the longest test prompt has {longest} tokens, more than the model's "
                         f"max_seq_len {model.args.max_seq_len}")
    if room < wanted:
        logger.warning("evaluation.max_new_tokens %d lowered to %d: the longest prompt has %d tokens "
                       "and the model's context is %d", wanted, room, longest, model.args.max_seq_len)
    return min(wanted, room)


def execute(completions: Sequence[Completion], problems: Sequence[Mapping[str, Any]],
            execution: ExecutionConfig) -> list[dict[str, Any]]:
    """Run every completion in the sandbox (progress bar); rows as ``score_completions``."""
    by_name = {str(p["name"]): p for p in problems}
    limits = Limits(time_s=execution.limits.time_s, memory_mb=execution.limits.memory_mb,
                    output_bytes=execution.limits.output_bytes)
    with tqdm(total=len(completions), desc="executing", unit="program", disable=not is_main_process()) as bar:
        return score_completions(completions, by_name, limits, execution.workers,
                                 execution.allow_weaker_isolation, on_done=lambda: bar.update(1))
