"""The embedded verifiable code dataset: generator and task families.

Programs are labelled by running them in the sandbox of `weighted_mtp.execution`.

Regenerate the shipped file with::

    python -m wmtp_codegen --out data/01_raw/code_problems.jsonl --seed 0

See docs/DATASET.md for what is in it and how labels are decided.
"""

from .build import assemble_record, build_dataset, generate_problems, summarise, verify_problems

__all__ = [
    "assemble_record",
    "build_dataset",
    "generate_problems",
    "summarise",
    "verify_problems",
]
