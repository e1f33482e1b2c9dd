"""Tests of the embedded verifiable code dataset: the shipped file and the generator.

The sandbox that labels the programs is tested in tests/execution."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from wmtp_codegen import assemble_record, build_dataset, generate_problems, summarise
from wmtp_codegen.__main__ import main as codegen_main
from wmtp_codegen.families import FAMILIES, MUTATION_KINDS
from weighted_mtp.data.jsonl import read_jsonl
from weighted_mtp.execution import Job, Status, Verdict, run_many

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "code_problems.jsonl"
SMALL_FAMILIES = ["fizzbuzz", "digit_sum"]
FIELD_KINDS = (("solutions", "solution_kinds"), ("incorrect_solutions", "incorrect_kinds"))


@pytest.fixture(scope="module")
def shipped() -> list[dict]:
    if not SHIPPED.exists():
        pytest.fail(
            f"{SHIPPED} is missing; regenerate it with "
            "`python -m wmtp_codegen --out data/01_raw/code_problems.jsonl --seed 0`."
        )
    return read_jsonl(SHIPPED)


@pytest.fixture(scope="module")
def candidates() -> list[dict]:
    return generate_problems(seed=0)


# ------------------------------------------------------------------ shipped file


def test_shipped_file_meets_size_family_and_count_requirements(shipped: list[dict]) -> None:
    stats = summarise(shipped)["TOTAL"]
    families = {record["family"] for record in shipped}
    assert SHIPPED.stat().st_size < 2 * 1024 * 1024
    assert stats["problems"] >= 150
    assert len(families) >= 15
    assert stats["well_covered"] >= 0.9 * stats["problems"]


def test_shipped_records_have_codecontests_fields(shipped: list[dict]) -> None:
    names = [record["name"] for record in shipped]
    assert len(names) == len(set(names))
    allowed_kinds = set(MUTATION_KINDS) | {"reference"}
    for record in shipped:
        tests = record["public_tests"]
        assert 5 <= len(tests["input"]) == len(tests["output"]) <= 10, record["name"]
        assert record["private_tests"] == {"input": [], "output": []}
        assert record["generated_tests"] == {"input": [], "output": []}
        assert record["difficulty"] in (1, 2, 3)
        assert record["source"] == "weighted-mtp-embedded"
        assert record["name"].startswith(record["family"] + "_")
        for field, kinds in FIELD_KINDS:
            block = record[field]
            assert len(block["language"]) == len(block["solution"]) == len(record[kinds])
            assert set(block["language"]) <= {3}
            assert set(record[kinds]) <= allowed_kinds
        assert "reference" not in record["incorrect_kinds"]
        assert list(record) == sorted(record)


def test_shipped_file_matches_the_generator(shipped: list[dict], candidates: list[dict]) -> None:
    """The committed file is what `--seed 0` regenerates (statements, tests, programs)."""
    assert [r["name"] for r in shipped] == [c["name"] for c in candidates]
    for record, cand in zip(shipped, candidates):
        assert record["description"] == cand["description"]
        assert record["public_tests"] == cand["tests"]
        shipped_programs = Counter(record["solutions"]["solution"])
        shipped_programs.update(record["incorrect_solutions"]["solution"])
        generated = Counter(cand["correct"] + [m["source"] for m in cand["mutants"]])
        assert shipped_programs == generated, record["name"]


def test_shipped_labels_hold_when_re_executed(shipped: list[dict]) -> None:
    rng = random.Random(1234)
    pool = [(r, True, s) for r in shipped for s in r["solutions"]["solution"]]
    wrong = [(r, False, s) for r in shipped for s in r["incorrect_solutions"]["solution"]]
    sample = rng.sample(pool, 15) + rng.sample(wrong, 15)
    jobs = [
        Job(src, list(zip(r["public_tests"]["input"], r["public_tests"]["output"])))
        for r, _, src in sample
    ]
    results = run_many(jobs, workers=2)
    mismatched = [
        (record["name"], label)
        for (record, label, _), result in zip(sample, results)
        if result.passed != label
    ]
    assert mismatched == []


# --------------------------------------------------------------------- generator


def test_generate_problems_is_deterministic(candidates: list[dict]) -> None:
    assert generate_problems(seed=0) == candidates
    assert generate_problems(seed=1, n_per_family=1) != generate_problems(seed=0, n_per_family=1)


def test_generated_statements_differ_within_each_family(candidates: list[dict]) -> None:
    statements = Counter(c["description"].split("\nExample\n")[0] for c in candidates)
    assert max(statements.values()) == 1
    assert len({c["family"] for c in candidates}) == len(FAMILIES) >= 15


def test_assemble_record_files_programs_by_outcome(candidates: list[dict]) -> None:
    problem = candidates[0]
    n_ref, n_mut = len(problem["correct"]), len(problem["mutants"])
    passed, failed = Verdict(Status.PASSED), Verdict(Status.WRONG_ANSWER, 0)
    results = [passed] * n_ref + [passed] + [failed] * (n_mut - 1)
    record = assemble_record(problem, results)
    assert record["solution_kinds"] == ["reference"] * n_ref + [problem["mutants"][0]["kind"]]
    assert len(record["incorrect_solutions"]["solution"]) == n_mut - 1
    with pytest.raises(RuntimeError, match="reference solution failed"):
        assemble_record(problem, [Verdict(Status.WRONG_ANSWER, 2)] + results[1:])


def test_build_on_a_family_subset_is_deterministic(tmp_path: Path) -> None:
    kwargs = dict(seed=0, families=SMALL_FAMILIES, n_per_family=2, progress=False)
    first = build_dataset(out_path=tmp_path / "a.jsonl", **kwargs)
    second = build_dataset(out_path=tmp_path / "b.jsonl", **kwargs)
    assert first == second
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert {r["family"] for r in first} == set(SMALL_FAMILIES)


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown task families"):
        generate_problems(families=["no_such_family"])


def test_command_line_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "problems.jsonl"
    args = ["--out", str(out), "--families", "fizzbuzz", "--n-per-family", "1", "--quiet"]
    code = codegen_main(args)
    assert code == 0
    assert [r["name"] for r in read_jsonl(out)] == ["fizzbuzz_0"]
