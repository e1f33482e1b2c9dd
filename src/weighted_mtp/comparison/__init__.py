"""Recipe comparison over seeds: train or reuse runs, then a paired pass@k table
(docs/EVALUATION.md, "Comparing recipes")."""

from weighted_mtp.comparison.runs import RECIPES, RunSpec, plan_runs
from weighted_mtp.comparison.study import run_comparison
from weighted_mtp.comparison.table import RunResult, comparison_table, to_markdown

__all__ = ["RECIPES", "RunResult", "RunSpec", "comparison_table", "plan_runs", "run_comparison", "to_markdown"]
