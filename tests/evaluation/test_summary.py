"""From verdict rows to pass@k, intervals, families and failure kinds."""

from __future__ import annotations

import pytest

from weighted_mtp.evaluation import GREEDY, format_table, render_report, summarise


def rows_for(problem: str, family: str, passes: list[bool], greedy: bool) -> list[dict]:
    rows = [{"problem": problem, "family": family, "sample": s, "passed": p,
             "status": "passed" if p else "wrong_answer", "completion": "print(1)\n"}
            for s, p in enumerate(passes)]
    rows.append({"problem": problem, "family": family, "sample": GREEDY, "passed": greedy,
                 "status": "passed" if greedy else "timeout", "completion": "x"})
    return rows


def test_summary_of_hand_computed_rows() -> None:
    rows = (rows_for("p1", "easy", [True, True, False, False], True)
            + rows_for("p2", "easy", [False] * 4, False)
            + rows_for("p3", "hard", [True, False, False, False], False))
    summary = summarise(rows, k_values=[1, 2], n_resamples=200, seed=0)
    assert summary["n_problems"] == 3 and summary["n_samples"] == 4
    # pass@1 = c/n per problem: (0.5 + 0 + 0.25) / 3; pass@2: 1 - C(n-c,2)/C(4,2)
    assert summary["pass@1"] == pytest.approx(0.75 / 3)
    assert summary["pass@2"] == pytest.approx((1 - 1 / 6 + 0 + 1 - 3 / 6) / 3)
    assert summary["greedy_pass@1"] == pytest.approx(1 / 3)
    assert summary["per_family"]["easy"] == {"n_problems": 2, "pass@1": 0.25,
                                             "pass@2": pytest.approx((1 - 1 / 6) / 2),
                                             "greedy_pass@1": 0.5}
    assert summary["failures"] == {"passed": 4, "timeout": 2, "wrong_answer": 9}
    low, high = summary["ci95"]["pass@1"]
    assert 0.0 <= low <= summary["pass@1"] <= high <= 0.5
    assert "pass@2" in format_table(summary)


def test_report_is_self_contained_html() -> None:
    rows = rows_for("p1", "easy", [True, False], True) + rows_for("p<2>", "hard", [False, False], False)
    summary = {"model": "m", "temperature": 0.8, **summarise(rows, [1, 2], 100, 0)}
    page = render_report(summary, rows)
    assert page.startswith("<!doctype html>") and "http" not in page
    assert "p&lt;2&gt;" in page and "greedy_pass@1" in page and "hard" in page
