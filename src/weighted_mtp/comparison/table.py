"""The comparison table: pass@k per recipe over seeds, and each recipe's difference to the
baseline with a paired bootstrap interval (docs/EVALUATION.md, "Comparing recipes").

A unit is one test problem under one seed. Both recipes are scored on the same units, so
the paired difference removes what they share (how hard each problem is, how lucky a
seed's sampling was) and the interval reflects only how the recipes differ. A recipe's own
figure is the mean over its units — the mean over seeds of each seed's pass@k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weighted_mtp.config.recipes import RECIPES
from weighted_mtp.evaluation.intervals import bootstrap_interval, paired_bootstrap_interval
from weighted_mtp.evaluation.summary import GREEDY_METRIC, per_problem_scores

CONTROL = "baseline"
CRITIC_FIGURES = ("val_value_auroc", "val_value_auroc_within_problem", "val_bug_hit_rate",
                  "val_bug_hit_chance")


@dataclass(frozen=True)
class RunResult:
    """What one recipe at one seed produced.

    Attributes:
        recipe: The recipe.
        seed: The seed.
        scores: Metric (``pass@k``, ``greedy_pass@1``) → problem → score, test split only.
        critic: The best model's critic figures (``val_value_auroc``, …); NaN where absent.
        wall_time_s: Seconds the run took (training and evaluation).
        reused: The run was finished by an earlier comparison.
    """

    recipe: str
    seed: int
    scores: Mapping[str, Mapping[str, float]]
    critic: Mapping[str, float] = field(default_factory=dict)
    wall_time_s: float = math.nan
    reused: bool = False


def run_result(recipe: str, seed: int, completions: Sequence[Mapping[str, Any]], k_values: Sequence[int],
               best_model_metrics: Mapping[str, Any] | None, wall_time_s: float, reused: bool) -> RunResult:
    """A :class:`RunResult` from a run's scored completions and best-model metrics."""
    test_rows = [row for row in completions if row.get("split", "test") == "test"]
    if not test_rows:
        raise ValueError(f"{recipe} seed {seed}: no scored test completions; was the evaluation enabled?")
    metrics = best_model_metrics or {}
    # A recipe without a critic has an untrained value head: its AUROC would be noise.
    has_critic = recipe in RECIPES and RECIPES[recipe].needs_critic
    critic = {name: _number(metrics.get(name)) if has_critic else math.nan for name in CRITIC_FIGURES}
    return RunResult(recipe, seed, per_problem_scores(test_rows, k_values), critic, wall_time_s, reused)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def comparison_table(results: Sequence[RunResult], metrics: Sequence[str], n_resamples: int = 1000,
                     bootstrap_seed: int = 0) -> dict[str, Any]:
    """Per recipe: mean and 95% interval of each metric over its (seed, problem) units,
    the paired difference to the baseline on the units both have, the critic figures
    and the wall time (means over seeds).

    Raises:
        ValueError: When two runs of the same recipe and seed are given.
    """
    by_recipe: dict[str, dict[int, RunResult]] = {}
    for result in results:
        runs = by_recipe.setdefault(result.recipe, {})
        if result.seed in runs:
            raise ValueError(f"two results for {result.recipe} seed {result.seed}")
        runs[result.seed] = result
    control = by_recipe.get(CONTROL)
    rows = []
    for recipe, runs in by_recipe.items():
        row: dict[str, Any] = {"recipe": recipe, "seeds": sorted(runs), "metrics": {}, "vs_baseline": {}}
        for metric in metrics:
            units = _units(runs, metric)
            if not units:
                continue
            values = list(units.values())
            row["metrics"][metric] = {"mean": float(np.mean(values)),
                                      "ci95": list(bootstrap_interval(values, n_resamples, bootstrap_seed)),
                                      "units": len(values)}
            if control is not None and recipe != CONTROL:
                row["vs_baseline"][metric] = _paired(units, _units(control, metric), n_resamples, bootstrap_seed)
        for name in CRITIC_FIGURES:
            row[name] = _mean_finite(run.critic.get(name, math.nan) for run in runs.values())
        row["wall_time_s"] = _mean_finite(run.wall_time_s for run in runs.values())
        rows.append(row)
    return {"control": CONTROL if control is not None else None, "metrics": list(metrics), "rows": rows,
            "runs": [{"recipe": r.recipe, "seed": r.seed, "wall_time_s": r.wall_time_s, "reused": r.reused,
                      **{m: float(np.mean(list(r.scores[m].values()))) for m in metrics if m in r.scores},
                      **{name: r.critic.get(name, math.nan) for name in CRITIC_FIGURES}}
                     for r in results]}


def _units(runs: Mapping[int, RunResult], metric: str) -> dict[tuple[int, str], float]:
    """(seed, problem) → score of ``metric`` over the runs."""
    return {(seed, problem): score for seed, run in runs.items()
            for problem, score in run.scores.get(metric, {}).items()}


def _paired(treatment: Mapping[tuple[int, str], float], control: Mapping[tuple[int, str], float],
            n_resamples: int, seed: int) -> dict[str, Any] | None:
    shared = sorted(set(treatment) & set(control))
    if not shared:
        return None
    mean, interval = paired_bootstrap_interval([treatment[u] for u in shared], [control[u] for u in shared],
                                               n_resamples, seed)
    return {"mean": mean, "ci95": list(interval), "units": len(shared)}


def _mean_finite(values: Any) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def metric_order(k_values: Sequence[int]) -> list[str]:
    """``pass@k`` by k, then greedy pass@1."""
    return [f"pass@{k}" for k in sorted(k_values)] + [GREEDY_METRIC]


def to_markdown(table: Mapping[str, Any]) -> str:
    """Two tables: pass@k per recipe (mean over seeds, 95% interval), then each recipe
    minus the baseline (paired by problem and seed) with the critic's AUROC and wall time."""
    metrics = table["metrics"]
    lines = ["| recipe | seeds | " + " | ".join(metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for row in table["rows"]:
        cells = [_with_interval(row["metrics"].get(metric)) for metric in metrics]
        lines.append(f"| {row['recipe']} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "| recipe | " + " | ".join(f"Δ {metric}" for metric in metrics)
              + " | value AUROC | within-problem AUROC | bug hit / chance | wall time (min) |",
              "|---|" + "---|" * (len(metrics) + 4)]
    for row in table["rows"]:
        deltas = ["(control)" if row["recipe"] == table.get("control") else _with_interval(row["vs_baseline"].get(m), sign=True)
                  for m in metrics]
        bug = f"{_fmt(row['val_bug_hit_rate'])} / {_fmt(row['val_bug_hit_chance'])}"
        lines.append(f"| {row['recipe']} | " + " | ".join(deltas)
                     + f" | {_fmt(row['val_value_auroc'])} | {_fmt(row['val_value_auroc_within_problem'])}"
                     + f" | {bug} | {_fmt(row['wall_time_s'] / 60, 1)} |")
    return "\n".join(lines) + "\n"


def _with_interval(entry: Mapping[str, Any] | None, sign: bool = False) -> str:
    if not entry:
        return "–"
    low, high = entry["ci95"]
    spec = "+.3f" if sign else ".3f"
    return f"{entry['mean']:{spec}} [{low:{spec}}, {high:{spec}}]"


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
