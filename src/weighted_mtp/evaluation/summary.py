"""From per-sample verdicts to the figures a user reads: pass@k, intervals, families, failures.

Each figure is a mean over problems with a percentile-bootstrap interval over problems
(docs/EVALUATION.md). Greedy pass@1 (one temperature-0 completion per problem) is kept
apart from the sampled pass@k: the two answer different questions (the best single answer
vs. the chance that one of k tries works).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from weighted_mtp.evaluation.intervals import DEFAULT_RESAMPLES, bootstrap_interval
from weighted_mtp.evaluation.passk import per_problem_pass_at_k
from weighted_mtp.evaluation.scoring import GREEDY

GREEDY_METRIC = "greedy_pass@1"


def per_problem_scores(rows: Iterable[Mapping[str, Any]], k_values: Sequence[int]) -> dict[str, dict[str, float]]:
    """Metric → {problem → score}: pass@k from the sampled rows, greedy pass@1 from the
    greedy row. A problem's sample count ``n`` is its number of sampled rows.

    Raises:
        ValueError: If a ``k`` exceeds the number of samples of some problem.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    greedy: dict[str, float] = {}
    for row in rows:
        if row["sample"] == GREEDY:
            greedy[row["problem"]] = float(bool(row["passed"]))
        else:
            counts[row["problem"]][0] += 1
            counts[row["problem"]][1] += int(bool(row["passed"]))
    scores: dict[str, dict[str, float]] = {}
    names = sorted(counts)
    for k in k_values:
        values = per_problem_pass_at_k([tuple(counts[name]) for name in names], k)
        scores[f"pass@{k}"] = dict(zip(names, values))
    if greedy:
        scores[GREEDY_METRIC] = greedy
    return scores


def summarise(rows: Sequence[Mapping[str, Any]], k_values: Sequence[int],
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The evaluation figures of one model on one problem set.

    Args:
        rows: Scored completions (``problem``, ``family``, ``sample``, ``status``, ``passed``).
        k_values: The k of each pass@k.
        n_resamples: Bootstrap resamples of each interval.
        seed: Seed of the bootstrap.

    Returns:
        ``n_problems``, ``n_samples``, one entry per metric (mean over problems), ``ci95``
        (metric → ``[low, high]``), ``per_family`` (family → ``n_problems`` and each metric)
        and ``failures`` (status → count over all executed completions).
    """
    scores = per_problem_scores(rows, k_values)
    family_of = {row["problem"]: row["family"] for row in rows}
    sampled = Counter(row["problem"] for row in rows if row["sample"] != GREEDY)
    summary: dict[str, Any] = {
        "n_problems": len(family_of),
        "n_samples": min(sampled.values()) if sampled else 0,
    }
    ci95: dict[str, list[float]] = {}
    for metric, by_problem in scores.items():
        values = list(by_problem.values())
        summary[metric] = float(np.mean(values))
        ci95[metric] = list(bootstrap_interval(values, n_resamples, seed))
    summary["ci95"] = ci95
    summary["per_family"] = _per_family(scores, family_of)
    summary["failures"] = dict(sorted(Counter(row["status"] for row in rows).items()))
    return summary


def _per_family(scores: Mapping[str, Mapping[str, float]], family_of: Mapping[str, str]) -> dict[str, Any]:
    """Family → its problem count and the mean of each metric over its problems."""
    table: dict[str, Any] = {}
    for family in sorted(set(family_of.values())):
        members = [name for name, fam in family_of.items() if fam == family]
        entry: dict[str, Any] = {"n_problems": len(members)}
        for metric, by_problem in scores.items():
            values = [by_problem[name] for name in members if name in by_problem]
            entry[metric] = float(np.mean(values)) if values else None
        table[family] = entry
    return table


def metric_names(summary: Mapping[str, Any]) -> list[str]:
    """The metrics of a summary in reading order: pass@k by k, then greedy pass@1."""
    passk = sorted((m for m in summary["ci95"] if m.startswith("pass@")), key=lambda m: int(m[5:]))
    return passk + [m for m in summary["ci95"] if m == GREEDY_METRIC]


def format_table(summary: Mapping[str, Any]) -> str:
    """The headline figures as a plain-text table for the log."""
    lines = [f"{'metric':<16}{'value':>8}   95% interval   ({summary['n_problems']} problems, "
             f"{summary['n_samples']} samples each)"]
    for metric in metric_names(summary):
        low, high = summary["ci95"][metric]
        lines.append(f"{metric:<16}{summary[metric]:>8.3f}   [{low:.3f}, {high:.3f}]")
    return "\n".join(lines)
