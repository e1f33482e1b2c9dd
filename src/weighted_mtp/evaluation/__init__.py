"""Evaluation by execution: held-out problems, sandboxed runs, pass@k with intervals.

Kedro-free; the ``evaluation`` pipeline's nodes call it (docs/EVALUATION.md).
"""

from weighted_mtp.evaluation.extract import extract_program
from weighted_mtp.evaluation.intervals import bootstrap_interval, paired_bootstrap_interval
from weighted_mtp.evaluation.passk import pass_at_k, per_problem_pass_at_k
from weighted_mtp.evaluation.problems import (
    overlapping_problems,
    problem_family,
    problem_prompt,
    problem_tests,
    sample_training_problems,
)
from weighted_mtp.evaluation.report import render_report
from weighted_mtp.evaluation.scoring import GREEDY, NO_PROGRAM, Completion, score_completions
from weighted_mtp.evaluation.summary import GREEDY_METRIC, format_table, per_problem_scores, summarise

__all__ = [
    "GREEDY",
    "GREEDY_METRIC",
    "NO_PROGRAM",
    "Completion",
    "bootstrap_interval",
    "extract_program",
    "format_table",
    "overlapping_problems",
    "paired_bootstrap_interval",
    "pass_at_k",
    "per_problem_pass_at_k",
    "per_problem_scores",
    "problem_family",
    "problem_prompt",
    "problem_tests",
    "render_report",
    "sample_training_problems",
    "score_completions",
    "summarise",
]
