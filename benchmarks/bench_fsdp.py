"""Benchmark: peak host memory per rank and tokens/s, DDP against FSDP2, 2 CPU ranks.

    python benchmarks/bench_fsdp.py                  # ~134 M parameters, writes results/fsdp.json
    python benchmarks/bench_fsdp.py --dim 1024 --layers 12 --steps 3

A seeded model of 100-300 M parameters (4 MTP heads, vocabulary 32000) is written once as
a model directory; then, each strategy in two fresh gloo processes (``torch.multiprocessing``,
one thread each), the ranks load it as the project does and take ``--steps`` optimizer
steps of the pretrain objective (the per-head loss path, AdamW) on random tokens:

- ``ddp``: every rank loads the whole model (``from_pretrained``), rank 0's weights are
  broadcast, gradients are averaged once per step;
- ``fsdp``: the model is built on the meta device and sharded, rank 0 alone reads the file
  and its tensors are broadcast into the shards (``load_pretrained_sharded``).

Reported per rank: the peak resident set of the process (``ru_maxrss``: start-up and
imports included, so both strategies carry the same ~0.3 GB floor), that peak minus the
resident set after imports, the resident set after loading and after the steps, and the
live training state (parameters or shards, AdamW moments) for comparison; per strategy the
median global tokens/s of the steps after the first (warm-up). The machine's other load is
not controlled: say so next to the figures. ``MALLOC_MMAP_THRESHOLD_`` (glibc) in the
environment changes how much freed memory the processes keep resident.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
try:
    import weighted_mtp  # noqa: F401
except ImportError:  # a checkout without pip install -e .
    sys.path.insert(0, str(ROOT / "src"))

from weighted_mtp.runtime.results import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fsdp.json"
WORLD = 2


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _state_mb(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """This rank's live training state: parameters (its shards under FSDP) and AdamW's
    moments; gradients are freed after each step (``zero_grad(set_to_none=True)``)."""
    tensors = [_local(p) for p in model.parameters()]
    tensors += [_local(v) for state in optimizer.state.values() for v in state.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def write_model(folder: Path, args: argparse.Namespace) -> int:
    """A seeded model directory; returns its parameter count."""
    from weighted_mtp.models import create_micro_model

    model = create_micro_model(folder, vocab_size=args.vocab, seed=0, dim=args.dim, n_layers=args.layers,
                               n_heads=args.dim // 64, n_kv_heads=args.dim // 64, n_future_tokens=4,
                               max_seq_len=args.seq, multiple_of=256)
    return sum(p.numel() for p in model.parameters())


def batches(args: argparse.Namespace, rank: int) -> list[dict[str, Any]]:
    """``steps`` random batches of ``batch × seq`` tokens, every token a target."""
    from weighted_mtp.data import MTPCollator

    generator = torch.Generator().manual_seed(1000 + rank)
    collate = MTPCollator(pad_token_id=0)
    out = []
    for _ in range(args.steps):
        rows = []
        for _ in range(args.batch):
            ids = torch.randint(1, args.vocab, (args.seq,), generator=generator).tolist()
            rows.append({"input_ids": ids, "labels": ids, "is_correct": True, "truncated": False,
                         "problem_id": "p", "task_id": "t"})
        out.append(collate(rows))
    return out


def worker(rank: int, strategy: str, model_dir: str, out: str, port: int, args: argparse.Namespace) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from weighted_mtp.config import validate_config
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.runtime import distributed
    from weighted_mtp.runtime.parallel import prepare_model
    from weighted_mtp.runtime.sharded_checkpoint import load_pretrained_sharded
    from weighted_mtp.training.objective import objective_for, set_trainable
    from weighted_mtp.training.schedule import build_optimizer, build_scheduler
    from weighted_mtp.training.step import train_step, trainable_parameters

    import yaml

    distributed.init_distributed("gloo", timeout_minutes=30)
    after_imports = _rss_mb()
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())
    config = validate_config(params)
    objective = objective_for("pretrain", config.training)
    cpu = torch.device("cpu")
    if strategy == "fsdp":
        model = load_pretrained_sharded(model_dir)
    else:
        model = prepare_model(MetaLlamaMTPAdapter.from_pretrained(model_dir), "ddp", cpu)
    loaded = _rss_mb()
    set_trainable(model, trunk=True, heads=True, value_head=False)
    optimizer = build_optimizer(trainable_parameters(model), 1e-4, 0.0)
    scheduler = build_scheduler(optimizer, args.steps, 0.0)
    rates = []
    for step, batch in enumerate(batches(args, rank), start=1):
        start = time.perf_counter()
        figures = train_step(model, [batch], objective, optimizer, scheduler, max_grad_norm=1.0,
                             device=cpu, step=step)
        rates.append(figures["tokens"] / (time.perf_counter() - start))  # global: tokens of both ranks
    result = {"rank": rank, "peak_rss_mb": _peak_mb(), "rss_after_imports_mb": after_imports,
              "rss_after_load_mb": loaded, "step_peak_over_imports_mb": _peak_mb() - after_imports,
              "rss_after_steps_mb": _rss_mb(), "training_state_mb": _state_mb(model, optimizer),
              "tokens_per_s": rates}
    (Path(out) / f"{strategy}_rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


def run(strategy: str, model_dir: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(worker, args=(strategy, str(model_dir), str(out), port, args), nprocs=WORLD, join=True)
    ranks = [json.loads((out / f"{strategy}_rank{r}.json").read_text()) for r in range(WORLD)]
    return {"ranks": ranks, "tokens_per_s_median": statistics.median(ranks[0]["tokens_per_s"][1:])}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12, help="blocks in all: trunk + 4 heads")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, help="rows per rank per step")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        n_params = write_model(scratch / "model", args)
        print(f"model: {n_params / 1e6:.0f} M parameters (dim {args.dim}, {args.layers} blocks, "
              f"vocab {args.vocab}); {WORLD} ranks × {args.batch} × {args.seq} tokens, {args.steps} steps")
        results = {}
        for strategy in ("ddp", "fsdp"):
            started = time.perf_counter()
            results[strategy] = run(strategy, scratch / "model", scratch, args)
            results[strategy]["wall_s"] = time.perf_counter() - started
    ddp, fsdp = results["ddp"], results["fsdp"]
    ratios = {
        "rank1_peak_fsdp_over_ddp": fsdp["ranks"][1]["peak_rss_mb"] / ddp["ranks"][1]["peak_rss_mb"],
        "rank1_peak_over_imports_fsdp_over_ddp": (fsdp["ranks"][1]["step_peak_over_imports_mb"]
                                                 / ddp["ranks"][1]["step_peak_over_imports_mb"]),
        "rank0_peak_fsdp_over_ddp": fsdp["ranks"][0]["peak_rss_mb"] / ddp["ranks"][0]["peak_rss_mb"],
        "tokens_per_s_fsdp_over_ddp": fsdp["tokens_per_s_median"] / ddp["tokens_per_s_median"],
    }
    report = {
        "command": "python " + " ".join([Path(__file__).relative_to(ROOT).as_posix()]
                                        + (argv if argv is not None else sys.argv[1:])),
        "device": f"cpu, {WORLD} gloo ranks, 1 thread each", "cpus": os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "config": {"n_params": n_params, **{k: v for k, v in vars(args).items() if k != "out"}},
        "ddp": ddp, "fsdp": fsdp, "ratios": ratios,
    }
    write_json(report, args.out)
    for strategy in ("ddp", "fsdp"):
        ranks = results[strategy]["ranks"]
        print(f"{strategy:4}: peak RSS rank 0 {ranks[0]['peak_rss_mb']:.0f} MB, rank 1 {ranks[1]['peak_rss_mb']:.0f} MB "
              f"(above imports: {ranks[0]['step_peak_over_imports_mb']:.0f} / {ranks[1]['step_peak_over_imports_mb']:.0f} MB); "
              f"{results[strategy]['tokens_per_s_median']:.0f} tokens/s (median of steps 2..{args.steps})")
    print("FSDP / DDP: rank-1 peak {rank1_peak_fsdp_over_ddp:.2f}x (above imports "
          "{rank1_peak_over_imports_fsdp_over_ddp:.2f}x), rank-0 peak {rank0_peak_fsdp_over_ddp:.2f}x, "
          "tokens/s {tokens_per_s_fsdp_over_ddp:.2f}x".format(**ratios))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
