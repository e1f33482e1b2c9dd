"""A self-contained HTML page of one evaluation: headline figures, families, failures, examples.

Opened anywhere (no scripts, no external files) and logged to MLflow next to the JSON, so
the numbers are readable without a notebook. Bars are plain CSS widths.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from weighted_mtp.evaluation.summary import GREEDY_METRIC, metric_names

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#e8eef6;width:12em;height:.9em;display:inline-block;vertical-align:middle}
.bar span{background:#3b6fb6;height:100%;display:block}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
.pass{color:#1a7f37}.fail{color:#b42318}
"""


def render_report(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], examples: int = 3) -> str:
    """The HTML report.

    Args:
        summary: ``evaluation.json`` content (see ``summary.summarise``), plus ``model``.
        rows: Scored completions, for the example section.
        examples: Passing and failing greedy completions shown (each).

    Returns:
        The page as a string.
    """
    parts = [f"<!doctype html><meta charset='utf-8'><title>Evaluation</title><style>{_STYLE}</style>",
             "<h1>Evaluation by execution</h1>",
             f"<p>Model <code>{_e(summary.get('model', '?'))}</code>: {summary['n_problems']} held-out "
             f"test problems, {summary['n_samples']} samples each at temperature "
             f"{summary.get('temperature', '?')}, plus one greedy completion. Every program ran "
             "in the sandbox against all of its problem's tests. Intervals: 95% percentile "
             "bootstrap over problems.</p>",
             _headline(summary), _families(summary), _failures(summary), _examples(rows, examples)]
    return "\n".join(parts)


def _headline(summary: Mapping[str, Any]) -> str:
    body = []
    for metric in metric_names(summary):
        low, high = summary["ci95"][metric]
        body.append(f"<tr><td>{metric}</td><td class=num>{summary[metric]:.3f}</td>"
                    f"<td class=num>[{low:.3f}, {high:.3f}]</td><td>{_bar(summary[metric])}</td></tr>")
    if "train_greedy_pass@1" in summary:
        body.append(f"<tr><td>train_greedy_pass@1 (sanity, training problems)</td>"
                    f"<td class=num>{summary['train_greedy_pass@1']:.3f}</td><td></td>"
                    f"<td>{_bar(summary['train_greedy_pass@1'])}</td></tr>")
    return "<h2>Pass@k</h2><table><tr><th>metric</th><th>value</th><th>95% CI</th><th></th></tr>" \
        + "".join(body) + "</table>"


def _families(summary: Mapping[str, Any]) -> str:
    metrics = metric_names(summary)
    head = "".join(f"<th>{m}</th>" for m in metrics)
    body = []
    for family, entry in summary["per_family"].items():
        cells = "".join(f"<td class=num>{_fmt(entry.get(m))}</td>" for m in metrics)
        main = entry.get(GREEDY_METRIC) if entry.get("pass@1") is None else entry.get("pass@1")
        body.append(f"<tr><td>{_e(family)}</td><td class=num>{entry['n_problems']}</td>{cells}"
                    f"<td>{_bar(main or 0.0)}</td></tr>")
    return ("<h2>Per family</h2><table><tr><th>family</th><th>problems</th>" + head
            + "<th>pass@1 (or greedy)</th></tr>" + "".join(body) + "</table>")


def _failures(summary: Mapping[str, Any]) -> str:
    total = sum(summary["failures"].values()) or 1
    body = "".join(f"<tr><td>{_e(status)}</td><td class=num>{count}</td><td>{_bar(count / total)}</td></tr>"
                   for status, count in summary["failures"].items())
    return "<h2>Outcomes of all completions</h2><table><tr><th>status</th><th>count</th><th></th></tr>" \
        + body + "</table>"


def _examples(rows: Sequence[Mapping[str, Any]], count: int) -> str:
    greedy = [row for row in rows if row["sample"] == -1]
    shown = [row for row in greedy if row["passed"]][:count] + [row for row in greedy if not row["passed"]][:count]
    blocks = [f"<h3 class={'pass' if row['passed'] else 'fail'}>{_e(row['problem'])}: {_e(row['status'])}</h3>"
              f"<pre>{_e(row['completion'])}</pre>" for row in shown]
    return "<h2>Greedy completions</h2>" + ("".join(blocks) or "<p>none</p>")


def _bar(value: float) -> str:
    width = max(0.0, min(1.0, float(value))) * 100
    return f"<span class=bar><span style='width:{width:.1f}%'></span></span>"


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _e(text: Any) -> str:
    return html.escape(str(text))
