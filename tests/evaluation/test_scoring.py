"""Scoring through the real sandbox: the dataset's labelled solutions as completions."""

from __future__ import annotations

import random

import pytest

from weighted_mtp.data import read_jsonl
from weighted_mtp.evaluation import GREEDY, Completion, score_completions, summarise
from weighted_mtp.execution import Limits
from tests.project_runs import RAW


@pytest.fixture(scope="module")
def labelled() -> tuple[dict, list[Completion], list[bool]]:
    problems = {p["name"]: p for p in read_jsonl(RAW)}
    chosen = random.Random(3).sample(sorted(problems), 6)
    completions, labels = [], []
    for name in chosen:
        good = problems[name]["solutions"]["solution"][:2]
        bad = problems[name]["incorrect_solutions"]["solution"][:2]
        programs = [(s, True) for s in good] + [(s, False) for s in bad]
        for sample, (source, label) in enumerate(programs):
            completions.append(Completion(name, sample, source))
            labels.append(label)
        completions.append(Completion(name, GREEDY, good[0]))
        labels.append(True)
    return {n: problems[n] for n in chosen}, completions, labels


def test_verdicts_equal_the_dataset_labels(labelled) -> None:
    problems, completions, labels = labelled
    rows = score_completions(completions, problems, Limits(time_s=5.0), workers=2)
    assert [row["passed"] for row in rows] == labels
    assert {row["status"] for row, label in zip(rows, labels) if label} == {"passed"}
    assert all(row["family"] == problems[row["problem"]]["family"] for row in rows)
    summary = summarise(rows, k_values=[1], n_resamples=100)
    expected = sum(labels[i] for i, c in enumerate(completions) if c.sample != GREEDY) / 24
    assert summary["pass@1"] == pytest.approx(expected)
    assert summary["greedy_pass@1"] == 1.0


def test_empty_completion_is_no_program_and_is_not_run() -> None:
    problem = {"name": "p", "family": "f", "public_tests": {"input": ["1\n"], "output": ["1\n"]}}
    rows = score_completions([Completion("p", 0, "  \n"), Completion("p", 1, "print(input())\n")],
                             {"p": problem}, Limits(time_s=5.0), workers=1)
    assert [(r["status"], r["passed"]) for r in rows] == [("no_program", False), ("passed", True)]
