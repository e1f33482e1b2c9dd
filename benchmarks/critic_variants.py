"""Which stage-1 critic learns: train variants and compare their critic-quality figures.

Each variant is a real ``kedro run --env verifiable`` of the stage-1 nodes (from the preset's
warmed-up micro model, so run the preset once first, e.g. ``WMTP_PRESET=study kedro run
--env verifiable --to-nodes pretrain_micro``) in its own experiment folder. The figures are
those stage 1 logs at its last validation (docs/METHOD.md, "Critic quality"): value
AUROC overall and within problems, explained variance, bug hit rate against chance.
Validation rows only; the test problems are never touched.

    python benchmarks/critic_variants.py --preset study                 # every variant
    python benchmarks/critic_variants.py --preset study --variants mlp,value_block

Results are merged into ``benchmarks/results/critic_variants.json`` (one entry per
variant and preset), so variants can be added one call at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from weighted_mtp.runtime.results import write_json

ROOT = Path(__file__).resolve().parents[1]
STAGE1_NODES = "validate_config,load_model,pretrain_micro,train_stage1"
FIGURES = ("val_value_loss", "val_value_explained_variance", "val_value_auroc", "val_bug_hit_rate_program",
           "val_bug_hit_chance_program",
           "val_value_auroc_within_problem", "val_bug_hit_rate", "val_bug_hit_chance",
           "val_value_mean_correct", "val_value_mean_incorrect")

VARIANTS: dict[str, tuple[str, str]] = {
    "frozen_linear": ("linear head on the frozen trunk (the preset's stage 1)", ""),
    "frozen_mlp": ("MLP head on the frozen trunk", "models.policy.value_head=mlp"),
    "frozen_linear_4ep": ("linear head, frozen trunk, 4 epochs", "training.stage1.n_epochs=4"),
    "block": ("own transformer block (a copy of head 0's) + linear, frozen trunk",
              "models.policy.value_head=block"),
    "block_4ep": ("own block, frozen trunk, 4 epochs", "models.policy.value_head=block,training.stage1.n_epochs=4"),
    "block_lr3e-4": ("own block, frozen trunk, lr 3e-4", "models.policy.value_head=block,training.stage1.learning_rate=3e-4"),
    "unfrozen_block": ("own block, trunk trained too (lr 3e-4)",
                       "models.policy.value_head=block,training.stage1.freeze_trunk=false,"
                       "training.stage1.learning_rate=3e-4"),
    "block_first_error": ("own block, frozen trunk, first-error value targets",
                          "models.policy.value_head=block,training.stage1.value_target=first_error"),
    "linear_first_error": ("linear head, frozen trunk, first-error value targets",
                           "training.stage1.value_target=first_error"),
    "unfrozen_block_first_error": ("own block, trunk trained too (lr 3e-4), first-error targets",
                                   "models.policy.value_head=block,training.stage1.freeze_trunk=false,"
                                   "training.stage1.learning_rate=3e-4,training.stage1.value_target=first_error"),
    "unfrozen_linear": ("linear head, trunk trained too (lr 3e-4)",
                        "training.stage1.freeze_trunk=false,training.stage1.learning_rate=3e-4"),
    "unfrozen_mlp": ("MLP head, trunk trained too (lr 3e-4)",
                     "models.policy.value_head=mlp,training.stage1.freeze_trunk=false,"
                     "training.stage1.learning_rate=3e-4"),
}


def run_variant(name: str, params: str, preset: str) -> dict:
    experiment = f"critic-{preset}-{name}"
    env = {**os.environ, "WMTP_PRESET": preset, "WMTP_EXPERIMENT": experiment}
    all_params = ",".join(p for p in ("mlflow.enabled=false", params) if p)
    command = [sys.executable, "-m", "kedro", "run", "--env", "verifiable", "--nodes", STAGE1_NODES,
               "--params", all_params]
    started = time.monotonic()
    log = ROOT / "data" / "08_reporting" / "critic_variants" / f"{experiment}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"variant {name} failed; see {log}")
    summary = json.loads((ROOT / "data" / "06_models" / "checkpoints" / experiment / "stage1_metrics.json").read_text())
    metrics = summary["metrics"]
    return {"params": params, "wall_time_s": round(wall, 1), "steps": summary["global_step"],
            **{key: metrics.get(key) for key in FIGURES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="study")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "critic_variants.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"variants": {}}
    for name in args.variants.split(","):
        description, params = VARIANTS[name]
        print(f"{name}: {description} ...", flush=True)
        entry = {"description": description, **run_variant(name, params, args.preset)}
        results["variants"][f"{args.preset}/{name}"] = entry
        results["date"] = time.strftime("%Y-%m-%d")
        write_json(results, args.out)
        print("  " + "  ".join(f"{k.removeprefix('val_')} {v:.3f}" for k, v in entry.items()
                              if k in FIGURES and v is not None), flush=True)


if __name__ == "__main__":
    main()
