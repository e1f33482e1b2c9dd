"""The embedded verifiable code dataset: generator, verifier and task families.

Regenerate the shipped file with::

    python -m weighted_mtp.data.codegen --out data/01_raw/code_problems.jsonl --seed 0

See docs/DATASET.md for what is in it and how labels are decided.
"""

from .build import assemble_record, build_dataset, generate_problems, summarise, verify_problems
from .verify import (
    VerifyJob,
    VerifyResult,
    normalise_output,
    run_solution,
    verify_batch,
    verify_many,
    verify_solution,
)

__all__ = [
    "VerifyJob",
    "VerifyResult",
    "assemble_record",
    "build_dataset",
    "generate_problems",
    "normalise_output",
    "run_solution",
    "summarise",
    "verify_batch",
    "verify_many",
    "verify_problems",
    "verify_solution",
]
