"""Benchmark: generation speed — KV cache, batching, self-speculative decoding, Hugging Face.

    nice -n 10 python benchmarks/bench_generation.py            # writes results/generation.json
    nice -n 10 python benchmarks/bench_generation.py --quick    # fewer tokens and repeats

Two models, both trained here briefly (nothing in the repository is a trained model): a
byte-level BPE tokenizer (vocab 4096, the project's ``train_bpe_tokenizer``) is trained on
the shipped dataset's correct solutions (``data/01_raw/code_problems.jsonl``, Alpaca
prompt + response), then

- ``micro``: the micro architecture (dim 128, 2 trunk blocks + 4 heads; 1.8M parameters
  with this tokenizer's 2538 tokens),
- ``large``: dim 512, 8 blocks (4 trunk + 4 heads), GQA 8 → 4 (28M parameters),

are trained with the MTP cross-entropy of all 4 heads on ``[BOS] prompt response [EOS]``
rows, in random 128-token windows (AdamW, seeded; micro 240 steps of 4 windows, large
40 steps of 4: minutes on 2 CPU cores, so the models are weak). Trained weights are cached under ``data/06_models/bench-generation/``
(git-ignored), so only the first run pays for training (``--retrain`` redoes it).

Measured per model, each a median over repeats, tokens/s = new tokens / wall time:
greedy by full recomputation (no cache) vs with the KV cache; 16 prompts one by one vs as
one batch; plain vs self-speculative greedy (mean accepted tokens per forward); Hugging
Face ``LlamaForCausalLM.generate`` on the same weights (``models/hf_llama.py``) vs ours.
Greedy outputs of all paths are compared token for token. Torch runs on ``--threads`` CPU
threads (default 1: the machine is shared and one thread keeps timings steady).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
try:
    import weighted_mtp.generation  # noqa: F401
except ImportError:  # a checkout without pip install -e .
    sys.path.insert(0, str(ROOT / "src"))

from weighted_mtp.data import (  # noqa: E402
    encode_prompts,
    encode_records,
    load_tokenizer,
    problems_to_records,
    read_jsonl,
    tokenizer_training_texts,
    train_bpe_tokenizer,
)
from weighted_mtp.generation import GenerationStats, generate  # noqa: E402
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter  # noqa: E402
from weighted_mtp.models.hf_llama import to_hf_llama  # noqa: E402
from weighted_mtp.models.micro import micro_args  # noqa: E402
from weighted_mtp.models.transformer import init_weights  # noqa: E402
from weighted_mtp.runtime.results import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "generation.json"
RAW = ROOT / "data" / "01_raw" / "code_problems.jsonl"
CACHE = ROOT / "data" / "06_models" / "bench-generation"
MODELS: dict[str, dict[str, Any]] = {
    "micro": {"overrides": {}, "train_steps": 240, "batch": 4, "lr": 3e-3},
    "large": {"overrides": {"dim": 512, "n_layers": 8, "n_heads": 8, "n_kv_heads": 4,
                            "multiple_of": 256},
              "train_steps": 40, "batch": 4, "lr": 1e-3},
}
ROW_LENGTH = 512  # rows are tokenised whole, then trained on in windows
WINDOW = 128


# ---------------------------------------------------------------- data and training

def load_data() -> tuple[list[dict[str, Any]], Any]:
    """Correct records of the shipped dataset and a tokenizer trained on them (cached)."""
    records = [r for r in problems_to_records(read_jsonl(RAW), None, seed=0) if r["is_correct"]]
    folder = CACHE / "tokenizer"
    if not folder.is_dir():
        tokenizer = train_bpe_tokenizer(tokenizer_training_texts(records), vocab_size=4096)
        tokenizer.save_pretrained(str(folder))
    return records, load_tokenizer(folder)


def mtp_loss(model: MetaLlamaMTPAdapter, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over heads of head k's cross-entropy against the token k + 1 ahead."""
    logits = model(ids).logits  # (B, S, n, V)
    seq = ids.shape[1]
    losses = [F.cross_entropy(logits[:, :seq - k - 1, k].flatten(0, 1), labels[:, k + 1:].flatten())
              for k in range(model.n_future_tokens)]
    return torch.stack(losses).mean()


def windows(rows: list[list[int]], count: int, rng: random.Random) -> list[list[int]]:
    """``count`` random ``WINDOW``-token spans of random rows (prompt and response alike)."""
    spans = []
    for row in rng.sample(rows, count):
        start = rng.randrange(max(1, len(row) - WINDOW + 1))
        spans.append(row[start:start + WINDOW])
    return spans


def train(name: str, spec: dict[str, Any], rows: list[list[int]], vocab: int, eos: int
          ) -> tuple[MetaLlamaMTPAdapter, dict[str, Any]]:
    """Initialise and train one model on windows of whole rows, seeded."""
    torch.manual_seed(0)
    args = micro_args(vocab, **spec["overrides"])
    model = MetaLlamaMTPAdapter(args)
    init_weights(model.transformer, args.n_layer_blocks, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.transformer.parameters(), lr=spec["lr"], weight_decay=0.0)
    rng = random.Random(0)
    losses, start = [], time.perf_counter()
    for step in range(spec["train_steps"]):
        batch = windows(rows, spec["batch"], rng)
        width = max(len(row) for row in batch)
        ids = torch.tensor([row + [eos] * (width - len(row)) for row in batch])
        labels = torch.tensor([row + [-100] * (width - len(row)) for row in batch])
        for group in optimizer.param_groups:  # linear warm-up over the first 10% of steps
            group["lr"] = spec["lr"] * min(1.0, (step + 1) / max(1, spec["train_steps"] // 10))
        loss = mtp_loss(model, ids, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    print(f"  trained {name}: {spec['train_steps']} steps of {spec['batch']} rows, "
          f"MTP loss {losses[0]:.2f} -> {statistics.mean(losses[-10:]):.2f} "
          f"({time.perf_counter() - start:.0f} s)")
    info = {"train_steps": spec["train_steps"], "batch": spec["batch"], "lr": spec["lr"],
            "window": WINDOW, "train_seconds": time.perf_counter() - start,
            "first_loss": losses[0], "final_loss_mean_last_10": statistics.mean(losses[-10:])}
    return model.eval(), info


def trained_model(name: str, spec: dict[str, Any], rows: list[list[int]], tokenizer: Any,
                  retrain: bool) -> tuple[MetaLlamaMTPAdapter, dict[str, Any]]:
    """The cached trained model, or a newly trained one (then cached)."""
    folder = CACHE / f"{name}-{spec['train_steps']}steps"
    info_file = folder / "bench_training.json"
    if folder.is_dir() and info_file.is_file() and not retrain:
        return MetaLlamaMTPAdapter.from_pretrained(folder).eval(), json.loads(info_file.read_text())
    model, info = train(name, spec, rows, len(tokenizer), tokenizer.eos_token_id)
    model.save_pretrained(folder)
    write_json(info, info_file)
    return model, info


# ---------------------------------------------------------------- timing

def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (``measure`` warms up once per model)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def greedy_recompute(model: MetaLlamaMTPAdapter, prompt: list[int], n_new: int) -> list[int]:
    """Greedy decoding without a cache: the training forward over the whole sequence per token."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        for _ in range(n_new):
            logits = model.head_logits(model.trunk_forward(ids), 0)[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


def hf_generate(hf_model: Any, prompt: list[int], n_new: int, pad_id: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                min_new_tokens=n_new, do_sample=False, eos_token_id=None,
                                pad_token_id=pad_id)
    return out[0, len(prompt):].tolist()


# ---------------------------------------------------------------- measurements

def measure(model: MetaLlamaMTPAdapter, prompts: list[list[int]], cfg: argparse.Namespace,
            recompute_tokens: int, pad_id: int) -> dict[str, Any]:
    """Every comparison on one model; returns tokens/s, ratios and equality checks."""
    out: dict[str, Any] = {}
    prompt, n = prompts[0], recompute_tokens
    generate(model, prompts[:2], max_new_tokens=8, speculative=True)  # warm-up
    ours = generate(model, [prompt], max_new_tokens=n)[0]
    out["recompute_tok_s"] = n / median_seconds(lambda: greedy_recompute(model, prompt, n),
                                                cfg.recompute_repeats)
    out["cache_tok_s"] = n / median_seconds(lambda: generate(model, [prompt], max_new_tokens=n),
                                            cfg.repeats)
    out["cache_vs_recompute"] = out["cache_tok_s"] / out["recompute_tok_s"]
    out["recompute_same_tokens"] = greedy_recompute(model, prompt, n) == ours
    out["recompute_new_tokens"] = n

    batch, m = prompts[:cfg.batch], cfg.batch_tokens
    sequential = lambda: [generate(model, [p], max_new_tokens=m) for p in batch]  # noqa: E731
    batched = lambda: generate(model, batch, max_new_tokens=m, batch_size=len(batch))  # noqa: E731
    out["sequential_tok_s"] = len(batch) * m / median_seconds(sequential, cfg.repeats)
    out["batched_tok_s"] = len(batch) * m / median_seconds(batched, cfg.repeats)
    out["batched_vs_sequential"] = out["batched_tok_s"] / out["sequential_tok_s"]
    out["batched_same_tokens"] = [r[0] for r in sequential()] == batched()

    out.update(measure_speculative(model, prompts[:cfg.spec_prompts], cfg))

    hf_model, h = to_hf_llama(model), cfg.hf_tokens
    ours_h = generate(model, [prompt], max_new_tokens=h)[0]
    out["hf_tok_s"] = h / median_seconds(lambda: hf_generate(hf_model, prompt, h, pad_id), cfg.repeats)
    out["ours_tok_s_at_hf_length"] = h / median_seconds(
        lambda: generate(model, [prompt], max_new_tokens=h), cfg.repeats)
    out["ours_vs_hf"] = out["ours_tok_s_at_hf_length"] / out["hf_tok_s"]
    out["hf_same_tokens"] = hf_generate(hf_model, prompt, h, pad_id) == ours_h
    return out


def measure_speculative(model: MetaLlamaMTPAdapter, prompts: list[list[int]],
                        cfg: argparse.Namespace) -> dict[str, Any]:
    """Plain vs self-speculative greedy, one prompt at a time (batch 1)."""
    s = cfg.spec_tokens
    stats = GenerationStats()
    spec_out = [generate(model, [p], max_new_tokens=s, speculative=True, stats=stats)[0]
                for p in prompts]
    plain_out = [generate(model, [p], max_new_tokens=s)[0] for p in prompts]
    plain = median_seconds(lambda: [generate(model, [p], max_new_tokens=s) for p in prompts],
                           cfg.repeats)
    spec = median_seconds(lambda: [generate(model, [p], max_new_tokens=s, speculative=True)
                                   for p in prompts], cfg.repeats)
    total = len(prompts) * s
    return {"plain_greedy_tok_s": total / plain, "speculative_tok_s": total / spec,
            "speculative_vs_plain": plain / spec, "mean_accepted_per_forward": stats.mean_accepted,
            "speculative_same_tokens": spec_out == plain_out}


# ---------------------------------------------------------------- report

def report_lines(name: str, info: dict[str, Any], r: dict[str, Any], cfg: argparse.Namespace
                 ) -> list[str]:
    def same(key: str) -> str:
        return "same tokens" if r[key] else "TOKENS DIFFER"

    return [
        f"{name}: {info['n_params'] / 1e6:.1f}M parameters, trained here {info['train_steps']} "
        f"steps x {info['batch']} windows of {info['window']} tokens of the shipped solutions "
        f"(MTP loss {info['first_loss']:.2f} -> {info['final_loss_mean_last_10']:.2f})",
        f"  greedy, full recompute, {r['recompute_new_tokens']} new   {r['recompute_tok_s']:9.1f} tok/s",
        f"  greedy, KV cache,       {r['recompute_new_tokens']} new   {r['cache_tok_s']:9.1f} tok/s"
        f"   x{r['cache_vs_recompute']:.1f} vs recompute ({same('recompute_same_tokens')})",
        f"  {cfg.batch} prompts one by one, {cfg.batch_tokens} new  {r['sequential_tok_s']:9.1f} tok/s",
        f"  {cfg.batch} prompts as one batch        {r['batched_tok_s']:9.1f} tok/s"
        f"   x{r['batched_vs_sequential']:.1f} vs one by one ({same('batched_same_tokens')})",
        f"  plain greedy, {cfg.spec_prompts} prompts x {cfg.spec_tokens}  {r['plain_greedy_tok_s']:9.1f} tok/s",
        f"  self-speculative greedy          {r['speculative_tok_s']:9.1f} tok/s"
        f"   x{r['speculative_vs_plain']:.2f} vs plain, {r['mean_accepted_per_forward']:.2f} "
        f"tokens/forward ({same('speculative_same_tokens')})",
        f"  HF LlamaForCausalLM.generate, {cfg.hf_tokens} new {r['hf_tok_s']:8.1f} tok/s",
        f"  ours (KV cache), {cfg.hf_tokens} new          {r['ours_tok_s_at_hf_length']:9.1f} tok/s"
        f"   x{r['ours_vs_hf']:.2f} vs HF ({same('hf_same_tokens')})",
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="micro,large", help="comma-separated: micro, large")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recompute-repeats", type=int, default=1)
    parser.add_argument("--micro-recompute-tokens", type=int, default=256)
    parser.add_argument("--large-recompute-tokens", type=int, default=32,
                        help="full recomputation of the large model is slow: fewer tokens")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batch-tokens", type=int, default=64)
    parser.add_argument("--spec-prompts", type=int, default=3)
    parser.add_argument("--spec-tokens", type=int, default=96)
    parser.add_argument("--hf-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--retrain", action="store_true", help="retrain the cached models")
    parser.add_argument("--quick", action="store_true",
                        help="1 repeat, 64-token runs, 8-prompt batch: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.batch, args.batch_tokens = 1, 8, 32
        args.spec_tokens = args.hf_tokens = args.micro_recompute_tokens = 64
        args.large_recompute_tokens = 32
    return args


def main() -> None:
    cfg = parse_args()
    torch.set_num_threads(cfg.threads)
    records, tokenizer = load_data()
    rows = [row["input_ids"] for row in encode_records(records, tokenizer, ROW_LENGTH)]
    prompts = [p for p in encode_prompts([(r["instruction"], r["input"]) for r in records],
                                         tokenizer) if len(p) <= 200]
    prompts = list({tuple(p): p for p in prompts}.values())  # one per problem
    print(f"{len(rows)} training rows, {len(prompts)} distinct prompts "
          f"({min(map(len, prompts))}-{max(map(len, prompts))} tokens), vocab {len(tokenizer)}")
    results, started = {}, time.perf_counter()
    for name in cfg.models.split(","):
        torch.set_num_threads(cfg.train_threads)
        model, info = trained_model(name, MODELS[name], rows, tokenizer, cfg.retrain)
        torch.set_num_threads(cfg.threads)
        info = {**info, "n_params": sum(p.numel() for p in model.transformer.parameters()),
                "args": model.args.to_dict()}
        recompute = cfg.micro_recompute_tokens if name == "micro" else cfg.large_recompute_tokens
        measured = measure(model, prompts, cfg, recompute, tokenizer.pad_token_id)
        results[name] = {"model": info, **measured}
        print("\n".join(report_lines(name, info, measured, cfg)))
    result = {
        "benchmark": "bench_generation",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**vars(cfg), "out": os.path.relpath(cfg.out, ROOT),
                   "prompt_tokens": [len(p) for p in prompts[:cfg.batch]]},
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
                        "cpus": os.cpu_count()},
        "results": results,
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(result, cfg.out)
    print(f"wrote {cfg.out} ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
