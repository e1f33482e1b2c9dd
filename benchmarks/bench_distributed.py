"""Benchmark: one process against N torchrun processes for the same global batch.

    python benchmarks/bench_distributed.py              # 1 vs 2 processes, writes results/distributed.json
    python benchmarks/bench_distributed.py --processes 4 --batch 2

The same short stage 2 (the conf/base micro model on the embedded dataset, TD weighting,
every step logged) runs in turns as

- ``1 process``: ``batch_size = N × batch`` rows per step, torch on N threads;
- ``N processes``: ``torchrun --nproc_per_node N``, ``batch`` rows per rank per step
  (the same global batch), one thread each, gradients averaged over ranks once per step.

So both use the same cores and take the same optimizer steps over the same number of rows.
Reported per configuration: the stage's median wall time (process start-up, imports and
data encoding excluded) and the median of the per-step global tokens/s the loop logs
(the first step left out: warm-up), plus the N-process/1-process ratios. The workers are
this script started again with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from weighted_mtp.runtime.results import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed.json"
TORCHRUN = Path(sys.executable).parent / "torchrun"


def build_params(args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    """conf/base parameters with a short stage 2 that logs every step and evaluates once."""
    with open(ROOT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        params = yaml.safe_load(handle)
    params["project"]["experiment"] = "bench-distributed"  # the file's is ${globals:experiment}
    params["dataset"]["max_length"] = args.max_length
    params["training"].update({"log_interval": 1, "eval_interval": 10**6, "seed": 0})
    params["training"]["stage2"].update({"n_epochs": 1.0, "batch_size": batch_size})
    params["training"]["distributed"]["backend"] = "gloo"
    return params


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """Records, tokenizer and a seeded micro model, written once for every run to load."""
    from weighted_mtp.data import problems_to_records, split_by_problem, tokenizer_training_texts, train_bpe_tokenizer
    from weighted_mtp.data.jsonl import read_jsonl
    from weighted_mtp.models import create_micro_model

    base = build_params(args, args.batch)["dataset"]
    problems = read_jsonl(ROOT / "data" / "01_raw" / "code_problems.jsonl")
    records = problems_to_records(problems, base["max_solutions_per_problem"], base["split_seed"])
    train, validation = split_by_problem(records, base["validation_fraction"], base["split_seed"])
    rows = args.steps * args.batch * args.processes  # exactly `steps` global batches
    (folder / "data.json").write_text(json.dumps({"train": train[:rows], "validation": validation[: args.val_rows]}))
    tokenizer = train_bpe_tokenizer(tokenizer_training_texts(train), vocab_size=args.vocab)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    create_micro_model(folder / "model", vocab_size=len(tokenizer), seed=0, dim=args.dim, n_layers=args.layers,
                       n_heads=4, n_kv_heads=2, n_future_tokens=4, max_seq_len=args.max_length)


def worker(args: argparse.Namespace) -> None:
    """One run (a torchrun rank, or the single process): stage 2, timed; rank 0 reports."""
    from weighted_mtp.config import validate_config
    from weighted_mtp.data import load_tokenizer
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.runtime import distributed
    from weighted_mtp.training.metrics_logger import HistoryBackend, MetricsLogger
    from weighted_mtp.training.trainer import trainer_for

    torch.set_num_threads(args.threads)
    distributed.init_distributed("gloo", timeout_minutes=10)
    folder = Path(args.world)
    data = json.loads((folder / "data.json").read_text())
    config = validate_config(build_params(args, args.batch))
    model = MetaLlamaMTPAdapter.from_pretrained(folder / "model")
    tokenizer = load_tokenizer(folder / "tokenizer")
    distributed.barrier()
    started = time.perf_counter()
    trainer = trainer_for("stage2", config,
                          logger=MetricsLogger([HistoryBackend()], is_main=distributed.is_main_process()))
    result = trainer.fit(model, tokenizer, data["train"], data["validation"], progress=False)
    seconds = time.perf_counter() - started
    if distributed.is_main_process():
        rates = [row["tokens_per_s"] for row in result.history if "tokens_per_s" in row][1:]
        summary = {"seconds": seconds, "tokens_per_s": statistics.median(rates), "steps": result.global_step,
                   "final_loss": result.metrics.get("train/loss"), "world_size": distributed.get_world_size()}
        Path(args.report).write_text(json.dumps(summary))
    distributed.shutdown()


def launch(args: argparse.Namespace, folder: Path, nproc: int, report: Path) -> dict[str, Any]:
    """Start one configuration and return what its rank 0 reported."""
    common = ["--worker", "--world", str(folder), "--report", str(report), "--steps", str(args.steps),
              "--max-length", str(args.max_length), "--processes", str(args.processes)]
    if nproc == 1:
        command = [sys.executable, __file__, *common, "--batch", str(args.batch * args.processes),
                   "--threads", str(args.processes)]
    else:
        command = [str(TORCHRUN), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                   "--master_port", str(args.port), __file__, *common, "--batch", str(args.batch), "--threads", "1"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "WMTP_PROGRESS": "0"}
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=1800)
    return json.loads(report.read_text())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the two configurations ``args.repeats`` times and summarise."""
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as name:
        folder = Path(name)
        prepare(args, folder)
        runs: dict[str, list[dict[str, Any]]] = {"1": [], str(args.processes): []}
        for repeat in range(args.repeats):
            for nproc in (1, args.processes):
                runs[str(nproc)].append(launch(args, folder, nproc, folder / f"report-{nproc}-{repeat}.json"))
    return summarise(runs, args)


def summarise(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    """Medians per configuration and the N-process / 1-process ratios."""
    n = str(args.processes)
    seconds = {key: statistics.median(r["seconds"] for r in value) for key, value in runs.items()}
    rate = {key: statistics.median(r["tokens_per_s"] for r in value) for key, value in runs.items()}
    hidden = ("worker", "world", "report", "out", "threads")
    config = {key: value for key, value in vars(args).items() if key not in hidden}
    return {
        "benchmark": "bench_distributed",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**config, "global_batch": args.batch * args.processes, "out": os.path.relpath(args.out, ROOT),
                   "backend": "gloo (CPU)",
                   "one_process": f"batch {args.batch * args.processes}, {args.processes} threads",
                   "n_processes": f"{args.processes} x (batch {args.batch}, 1 thread)"},
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "cpus": os.cpu_count()},
        "steps_per_run": runs["1"][0]["steps"],
        "stage_seconds_median": seconds,
        "tokens_per_s_median": rate,
        "ratio_stage_seconds": seconds[n] / seconds["1"],
        "ratio_tokens_per_s": rate[n] / rate["1"],
        "final_train_loss": {key: [r["final_loss"] for r in value] for key, value in runs.items()},
    }


def _report(result: dict) -> None:
    config = result["config"]
    print(f"stage 2, {result['steps_per_run']} steps of global batch {config['global_batch']}, "
          f"{config['repeats']} runs each (gloo, CPU):")
    for key in result["stage_seconds_median"]:
        print(f"  {key} process(es): stage {result['stage_seconds_median'][key]:6.2f} s   "
              f"tokens/s median {result['tokens_per_s_median'][key]:8.0f}")
    print(f"  ratio N/1: wall time {result['ratio_stage_seconds']:.2f}, tokens/s {result['ratio_tokens_per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2,
                        help="processes of the distributed run (torchrun --nproc_per_node)")
    parser.add_argument("--batch", type=int, default=4, help="rows per rank per step")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6, help="n_layers (trunk blocks = layers - 4 + 1)")
    parser.add_argument("--val-rows", type=int, default=8)
    parser.add_argument("--port", type=int, default=29561, help="torchrun master port")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    result = run(args)
    write_json(result, args.out)
    _report(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
