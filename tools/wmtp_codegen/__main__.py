"""Command line: regenerate the embedded code dataset.

    python -m wmtp_codegen --out data/01_raw/code_problems.jsonl --seed 0
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from .build import (
    DEFAULT_N_PER_FAMILY,
    DEFAULT_OUT_PATH,
    DEFAULT_TIMEOUT_S,
    SUMMARY_KEYS,
    build_dataset,
    summarise,
)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m wmtp_codegen",
        description="Generate the embedded verifiable code dataset (CodeContests fields).",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT_PATH), help="output JSONL path")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--n-per-family", type=int, default=DEFAULT_N_PER_FAMILY,
                        help=f"problems per task family (default {DEFAULT_N_PER_FAMILY})")
    parser.add_argument("--families", nargs="*", default=None, help="only these families")
    parser.add_argument("--workers", type=int, default=2, help="sandboxes running at once")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per test")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the dataset and log a per-family summary to stderr.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log = logging.getLogger("wmtp_codegen")
    start = time.perf_counter()
    records = build_dataset(
        seed=args.seed,
        out_path=args.out,
        workers=args.workers,
        n_per_family=args.n_per_family,
        families=args.families,
        timeout=args.timeout,
        progress=not args.quiet,
    )
    header = ("family", "problems", "correct", "incorrect", "passing", "2+2")
    log.info("%-18s %8s %8s %9s %8s %8s", *header)
    for family, row in summarise(records).items():
        counts = [row[key] for key in SUMMARY_KEYS]
        log.info("%-18s %8d %8d %9d %8d %8d", family, *counts)
    log.info("done in %.1f s", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
