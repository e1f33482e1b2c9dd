"""Benchmark: vectorised TD errors, GAE and token weights against per-element loops.

    python benchmarks/bench_weighting.py            # B=16, S=2048, writes results/weighting.json

The baseline is the straightforward implementation, one token at a time
(``weighted_mtp.value_weighting.reference``, also the tests' specification). For GAE a
second, stronger baseline loops over time only, vectorised over the batch (S steps). Every
figure is the median of several runs; speed-ups are baseline median / vectorised median.
Torch runs on one CPU thread by default (``--threads``): the loops cannot use more, and on a
shared machine OpenMP threads waiting for each other make the timings noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from weighted_mtp.runtime.results import write_json
from weighted_mtp.value_weighting import (
    build_weights,
    compute_gae_advantages,
    compute_td_errors,
)
from weighted_mtp.value_weighting.reference import (
    build_weights_loop,
    gae_advantages_loop,
    td_errors_loop,
)

RESULTS = Path(__file__).resolve().parent / "results" / "weighting.json"


def make_batch(
    batch: int, seq: int, seed: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Ragged batch: each row a prompt of random length, then a response of random length."""
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(1, seq // 4, (batch,), generator=gen)
    lengths = torch.randint(1, seq, (batch,), generator=gen)
    ends = torch.minimum(starts + lengths, torch.tensor(seq))
    positions = torch.arange(seq)
    mask = ((positions >= starts[:, None]) & (positions < ends[:, None])).float()
    return {
        "values": torch.rand(batch, seq, generator=gen).to(device),
        "rewards": (torch.rand(batch, generator=gen) < 0.5).float().to(device),
        "mask": mask.to(device),
        "truncated": (ends == seq).to(device),
    }


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gae_time_loop(
    delta: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """GAE looping over time, vectorised over the batch (S small kernels)."""
    out = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        running = (delta[:, t] + gamma * lam * running) * mask[:, t]
        out[:, t] = running
    return out


def _functions(b: dict[str, torch.Tensor], lam: float) -> tuple[dict, dict, dict]:
    """The vectorised functions, their per-element loops, and the settings used."""
    gamma, beta, clip = 1.0, 0.9, (0.1, 5.0)
    mask = b["mask"]
    delta = compute_td_errors(b["values"], b["rewards"], mask, gamma, truncated=b["truncated"])
    cpu = {k: v.cpu() for k, v in b.items()}
    delta_cpu = delta.cpu()

    def td() -> torch.Tensor:
        return compute_td_errors(b["values"], b["rewards"], mask, gamma, truncated=b["truncated"])

    vectorised = {
        "td": td,
        "gae": lambda: compute_gae_advantages(delta, mask, gamma, lam),
        "weights": lambda: build_weights(delta, mask, beta, *clip),
        "total": lambda: build_weights(
            compute_gae_advantages(td(), mask, gamma, lam), mask, beta, *clip
        ),
        "gae_time_loop": lambda: gae_time_loop(delta, mask, gamma, lam),
    }
    loops = {
        "td": lambda: td_errors_loop(
            cpu["values"], cpu["rewards"], cpu["mask"], gamma, truncated=cpu["truncated"]
        ),
        "gae": lambda: gae_advantages_loop(delta_cpu, cpu["mask"], gamma, lam),
        "weights": lambda: build_weights_loop(delta_cpu, cpu["mask"], beta, *clip),
    }
    return vectorised, loops, {"gamma": gamma, "lam": lam, "beta": beta, "clip": list(clip)}


def run(args: argparse.Namespace) -> dict:
    """Time everything and return the JSON-ready result."""
    device = torch.device(args.device)
    batch = make_batch(args.batch, args.seq, args.seed, device)
    vectorised, loops, settings = _functions(batch, args.lam)
    median = {
        (k if k.endswith("loop") else f"{k}_vectorised"): median_seconds(f, args.repeats, device)
        for k, f in vectorised.items()
    }
    for key, fn in loops.items():
        median[f"{key}_loop"] = median_seconds(fn, args.loop_repeats, device)
    median["total_loop"] = median["td_loop"] + median["gae_loop"] + median["weights_loop"]
    steps = ("td", "gae", "weights", "total")
    speedup = {k: median[f"{k}_loop"] / median[f"{k}_vectorised"] for k in steps}
    speedup["gae_vs_time_loop"] = median["gae_time_loop"] / median["gae_vectorised"]
    max_abs_diff = {
        k: (loops[k]() - vectorised[k]().double().cpu()).abs().max().item() for k in loops
    }
    config = {**vars(args), "out": os.path.relpath(args.out), **settings}
    config["response_tokens"] = int(batch["mask"].sum().item())
    environment = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    return {
        "benchmark": "bench_weighting",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "environment": environment,
        "median_seconds": median,
        "speedup": speedup,
        "max_abs_diff_vs_loop": max_abs_diff,
    }


def _report(result: dict) -> None:
    """Print the medians and speed-ups."""
    config, median, speedup = result["config"], result["median_seconds"], result["speedup"]
    print(f"B={config['batch']} S={config['seq']} device={config['device']} "
          f"({config['response_tokens']} response tokens), medians:")
    for key in ("td", "gae", "weights", "total"):
        print(f"  {key:8s} vectorised {median[f'{key}_vectorised'] * 1e3:8.3f} ms   "
              f"loop {median[f'{key}_loop'] * 1e3:9.1f} ms   speed-up {speedup[key]:7.0f}x")
    print(f"  gae vs the time-step loop ({median['gae_time_loop'] * 1e3:.1f} ms): "
          f"{speedup['gae_vs_time_loop']:.0f}x")
    print(f"  max |vectorised - loop|: {result['max_abs_diff_vs_loop']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--lam", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=21, help="runs of each vectorised fn")
    parser.add_argument("--loop-repeats", type=int, default=3, help="runs of each loop baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: the loops use one, and shared machines make more noisy)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    write_json(result, args.out)
    _report(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
