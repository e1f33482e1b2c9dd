"""Benchmark: the cost of the sandbox per program, and `run_many` throughput.

    python benchmarks/bench_execution.py              # writes results/execution.json

1. Overhead: one trusted reference program (the first solution of the embedded dataset,
   on its first test) is run in turns (a) with a plain ``subprocess.run([python, "-I",
   file])`` of the same interpreter — the measurement baseline, nothing untrusted — and
   (b) through `weighted_mtp.execution.run_tests` (bwrap, uid drop, namespaces, rlimits,
   capped pipes, output comparison). Reported: the median wall milliseconds of each and
   their ratio (goal: sandbox ≤ 2× plain).
2. Throughput: `run_many` on the same jobs (the reference solution of the first problems,
   all their tests) with 1 and 2 workers, in turns; executions (program runs, one per
   test) per second, and the 2-worker / 1-worker ratio (goal ≥ 1.6× on ≥ 2 free cores).

Turns alternate so a machine that gets busier affects both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from weighted_mtp.execution import Job, Limits, detect_isolation, run_many, run_tests
from weighted_mtp.runtime.results import write_json

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "code_problems.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "execution.json"


def load_records(count: int) -> list[dict]:
    """The first ``count`` problems of the embedded dataset."""
    lines = RAW.read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


def tests_of(record: dict) -> list[tuple[str, str]]:
    """A record's public tests as ``(stdin, expected)`` pairs."""
    return list(zip(record["public_tests"]["input"], record["public_tests"]["output"]))


def time_plain(python: str, path: str, stdin: str) -> float:
    """Seconds for one plain, unsandboxed run of the trusted reference program."""
    start = time.perf_counter()
    subprocess.run([python, "-I", path], input=stdin.encode(), capture_output=True,
                   timeout=30, check=True)
    return time.perf_counter() - start


def time_sandboxed(source: str, test: tuple[str, str]) -> float:
    """Seconds for one `run_tests` call with one test (must pass)."""
    start = time.perf_counter()
    verdict = run_tests(source, [test])
    elapsed = time.perf_counter() - start
    if not verdict.passed:
        raise RuntimeError(f"The reference program failed in the sandbox: {verdict}")
    return elapsed


def measure_overhead(record: dict, repeats: int) -> dict:
    """Median plain vs sandboxed wall time of one program run, in turns."""
    source, test = record["solutions"]["solution"][0], tests_of(record)[0]
    python = detect_isolation().python
    plain, sandboxed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "main.py")
        Path(path).write_text(source)
        for _ in range(3):  # warm-up: page cache, first probe
            time_plain(python, path, test[0]), time_sandboxed(source, test)
        for _ in range(repeats):
            plain.append(time_plain(python, path, test[0]))
            sandboxed.append(time_sandboxed(source, test))
    plain_ms, sandbox_ms = statistics.median(plain) * 1e3, statistics.median(sandboxed) * 1e3
    return {"plain_ms": plain_ms, "sandbox_ms": sandbox_ms,
            "overhead_ms": sandbox_ms - plain_ms, "ratio": sandbox_ms / plain_ms}


def measure_throughput(records: list[dict], rounds: int) -> dict:
    """Executions per second of `run_many` at 1 and 2 workers (best of ``rounds``)."""
    jobs = [Job(r["solutions"]["solution"][0], tests_of(r)) for r in records]
    executions = sum(len(job.tests) for job in jobs)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            start = time.perf_counter()
            verdicts = run_many(jobs, workers=workers, limits=Limits(time_s=10.0))
            rates[workers].append(executions / (time.perf_counter() - start))
            if not all(v.passed for v in verdicts):
                raise RuntimeError("A reference solution failed in the sandbox.")
    best = {w: max(r) for w, r in rates.items()}
    return {"jobs": len(jobs), "executions": executions,
            "executions_per_s": {str(w): r for w, r in best.items()},
            "all_rounds": {str(w): r for w, r in rates.items()},
            "speedup_2_vs_1": best[2] / best[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="overhead runs per side")
    parser.add_argument("--problems", type=int, default=24, help="jobs of the throughput test")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per worker count")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    records = load_records(args.problems)
    overhead = measure_overhead(records[0], args.repeats)
    throughput = measure_throughput(records, args.rounds)
    isolation = detect_isolation()
    result = {
        "benchmark": "bench_execution",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": vars(args),
        "environment": {"python": platform.python_version(), "sandbox_python": isolation.python,
                        "machine": platform.machine(), "cpus": os.cpu_count(),
                        "load_average": os.getloadavg()},
        "overhead": overhead,
        "throughput": throughput,
    }
    print(f"one run: plain subprocess {overhead['plain_ms']:.1f} ms, sandbox "
          f"{overhead['sandbox_ms']:.1f} ms (median; {overhead['ratio']:.2f}x, "
          f"+{overhead['overhead_ms']:.1f} ms)")
    rate = throughput["executions_per_s"]
    print(f"run_many: {rate['1']:.1f} executions/s with 1 worker, {rate['2']:.1f} with 2 "
          f"({throughput['speedup_2_vs_1']:.2f}x), {throughput['executions']} executions")
    write_json(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
