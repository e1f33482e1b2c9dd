"""Peak memory of the per-head MTP loss path vs the naive all-heads path, and step time.

Memory: each variant runs one forward+backward in a fresh subprocess. With CUDA the
figure is ``torch.cuda.max_memory_allocated`` during the step; on the CPU it is the peak
resident set (``ru_maxrss``) minus the resident set just before the step, which counts
what the step itself allocates (activations, logits, gradients). A fresh process per
variant keeps one variant's freed-but-cached memory out of the other's number.

Time: forward+backward of the micro model per batch (median of several runs), both paths.

Heads: the same per-head step with 4 heads against a model with one head
(``n_future_tokens: 1``) and the same trunk, i.e. what the 3 extra MTP heads cost in peak
memory on the per-head path (one head's logits alive at a time, so the extra cost is their
blocks' weights, gradients and activations).

Usage::

    python benchmarks/bench_model_memory.py            # every section, writes JSON
    python benchmarks/bench_model_memory.py --vocab 64000 --batch 2
    python benchmarks/bench_model_memory.py --sections heads   # one section; the file's others are kept
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
try:
    import weighted_mtp.models  # noqa: F401
except ImportError:  # a checkout without pip install -e .
    sys.path.insert(0, str(ROOT / "src"))

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter  # noqa: E402
from weighted_mtp.runtime.results import write_json  # noqa: E402
from weighted_mtp.models.micro import MICRO_DEFAULTS, micro_args  # noqa: E402
from weighted_mtp.models.per_head import backward_per_head  # noqa: E402
from weighted_mtp.models.transformer import init_weights  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "model_memory.json"
MICRO_VOCAB = 4096  # conf/base: dataset.tokenizer_vocab_size


def build_model(vocab: int, device: torch.device, **overrides) -> MetaLlamaMTPAdapter:
    """A micro-shaped model with a seeded init (not saved to disk)."""
    args = micro_args(vocab, **overrides)
    with torch.device("meta"):
        model = MetaLlamaMTPAdapter(args)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    init_weights(model.transformer, args.n_layer_blocks, generator=generator)
    init_weights(model.value_head, 1, generator=generator)
    return model.to(device)


def head_loss_fn(ids: torch.Tensor, n_heads: int):
    """Cross-entropy of head k against token t + k + 1, averaged over heads."""
    def head_loss(k: int, logits: torch.Tensor) -> torch.Tensor:
        offset = k + 1
        return F.cross_entropy(logits[:, :-offset].flatten(0, 1),
                               ids[:, offset:].flatten()) / n_heads
    return head_loss


def train_step(model: MetaLlamaMTPAdapter, ids: torch.Tensor, variant: str) -> float:
    """One forward+backward (with a value loss) by the chosen path; returns the MTP loss."""
    loss_fn = head_loss_fn(ids, model.n_future_tokens)
    rewards = torch.ones(ids.shape[0], 1, device=ids.device)
    if variant == "naive":
        out = model(ids)
        heads = [loss_fn(k, out.logits[:, :, k]) for k in range(model.n_future_tokens)]
        total = sum(heads) + 0.5 * ((out.values - rewards) ** 2).mean()
        total.backward()
        return float(sum(h.detach() for h in heads))
    z = model.trunk_forward(ids)
    value_loss = 0.5 * ((model.values_from_trunk(z) - rewards) ** 2).mean()
    return float(sum(backward_per_head(model, z, loss_fn, extra_loss=value_loss)))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def measure_memory_child(options: argparse.Namespace) -> dict:
    """Run in a fresh process: peak bytes one step of ``options.variant`` allocates."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = {"dim": options.dim}
    if options.variant == "one_head":  # the same trunk (layers[:-1]) and one head block
        shape.update(n_future_tokens=1, n_layers=MICRO_DEFAULTS["n_layers"] - 3)
    model = build_model(options.vocab, device, **shape)
    ids = torch.randint(0, options.vocab, (options.batch, options.seq), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        train_step(model, ids, _path(options.variant))
        torch.cuda.synchronize()
        peak, method = torch.cuda.max_memory_allocated() - before, "cuda.max_memory_allocated"
    else:
        before = _rss_bytes()
        train_step(model, ids, _path(options.variant))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        method = "ru_maxrss - rss before the step (fresh process)"
    return {"variant": options.variant, "peak_mb": peak / 2**20, "method": method,
            "n_params": sum(p.numel() for p in model.parameters())}


def _path(variant: str) -> str:
    """The loss path a memory variant takes (``one_head`` is the per-head path too)."""
    return "naive" if variant == "naive" else "per_head"


def _children(options: argparse.Namespace, variants: tuple[str, ...]) -> dict[str, dict]:
    """One fresh subprocess per variant."""
    results = {}
    for variant in variants:
        command = [sys.executable, __file__, "--child", variant, "--vocab", str(options.vocab),
                   "--dim", str(options.dim), "--batch", str(options.batch),
                   "--seq", str(options.seq), "--threads", str(options.threads)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def measure_heads(options: argparse.Namespace) -> dict:
    """Peak of one per-head training step with 4 heads over one head, same trunk."""
    results = _children(options, ("per_head", "one_head"))
    four, one = results["per_head"]["peak_mb"], results["one_head"]["peak_mb"]
    return {"config": {"vocab": options.vocab, "dim": options.dim, "batch": options.batch,
                       "seq": options.seq, "n_params_4_heads": results["per_head"]["n_params"],
                       "n_params_1_head": results["one_head"]["n_params"]},
            "method": results["per_head"]["method"], "four_heads_peak_mb": four,
            "one_head_peak_mb": one, "four_over_one": four / one, "goal": "<= 1.3"}


def measure_memory(options: argparse.Namespace) -> dict:
    """Both variants, each in its own subprocess."""
    results = _children(options, ("naive", "per_head"))
    naive, per_head = results["naive"]["peak_mb"], results["per_head"]["peak_mb"]
    logits_mb = options.batch * options.seq * options.vocab * 4 / 2**20
    return {"config": {"vocab": options.vocab, "dim": options.dim, "batch": options.batch,
                       "seq": options.seq, "n_heads": 4,
                       "n_params": results["naive"]["n_params"]},
            "method": results["naive"]["method"], "one_head_fp32_logits_mb": logits_mb,
            "naive_peak_mb": naive, "per_head_peak_mb": per_head,
            "naive_over_per_head": naive / per_head}


def measure_speed(options: argparse.Namespace) -> dict:
    """Median forward+backward time per batch of the micro model, both paths."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(MICRO_VOCAB, device)
    ids = torch.randint(0, MICRO_VOCAB, (options.speed_batch, options.speed_seq), device=device)
    timings: dict[str, list[float]] = {"naive": [], "per_head": []}
    for _ in range(options.repeats + 1):  # the first round is a warm-up
        for variant, runs in timings.items():
            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(model, ids, variant)
            if device.type == "cuda":
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
    medians = {v: statistics.median(runs[1:]) * 1000 for v, runs in timings.items()}
    return {"config": {"vocab": MICRO_VOCAB, "batch": options.speed_batch,
                       "seq": options.speed_seq, "repeats": options.repeats},
            "micro_params": sum(p.numel() for p in model.parameters()),
            "naive_ms_median": medians["naive"], "per_head_ms_median": medians["per_head"],
            "per_head_over_naive_time": medians["per_head"] / medians["naive"],
            "tokens_per_s_per_head_path": options.speed_batch * options.speed_seq
            / (medians["per_head"] / 1000)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--speed-batch", type=int, default=8)
    parser.add_argument("--speed-seq", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sections", default="memory,speed,heads",
                        help="comma-separated: memory, speed, heads")
    parser.add_argument("--child", choices=("naive", "per_head", "one_head"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    if options.child:
        options.variant = options.child
        print(json.dumps(measure_memory_child(options)))
        return
    command = "python " + " ".join([Path(__file__).relative_to(ROOT).as_posix()]
                                   + (argv if argv is not None else sys.argv[1:]))
    sections = [name.strip() for name in options.sections.split(",")]
    measures = {"memory": measure_memory, "speed": measure_speed, "heads": measure_heads}
    report = json.loads(options.out.read_text()) if options.out.is_file() and len(sections) < 3 else {}
    report.update({"device": "cuda" if torch.cuda.is_available() else f"cpu ({options.threads} threads)",
                   "torch": torch.__version__, "python": platform.python_version()})
    for name in sections:
        report[name] = {**measures[name](options), "command": command}
    report.setdefault("command", command)
    write_json(report, options.out)
    if "memory" in sections:
        memory = report["memory"]
        print(f"peak memory, one step, V={options.vocab}, B={options.batch}, S={options.seq}: "
              f"naive {memory['naive_peak_mb']:.0f} MB, per-head {memory['per_head_peak_mb']:.0f} MB "
              f"(naive / per-head = {memory['naive_over_per_head']:.2f}x)")
    if "speed" in sections:
        speed = report["speed"]
        print(f"micro model ({speed['micro_params']:,} params), B={options.speed_batch}, "
              f"S={options.speed_seq}: fwd+bwd {speed['per_head_ms_median']:.0f} ms per-head, "
              f"{speed['naive_ms_median']:.0f} ms naive (median of {options.repeats})")
    if "heads" in sections:
        heads = report["heads"]
        print(f"peak memory, per-head step, V={options.vocab}, B={options.batch}, S={options.seq}: "
              f"4 heads {heads['four_heads_peak_mb']:.0f} MB, 1 head {heads['one_head_peak_mb']:.0f} MB "
              f"(4 / 1 = {heads['four_over_one']:.2f}x; goal <= 1.3x)")
    print(f"wrote {options.out}")

if __name__ == "__main__":
    main()
