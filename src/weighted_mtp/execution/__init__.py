"""Run untrusted programs in a sandbox: the project's only door for untrusted code.

Dataset labelling (``tools/wmtp_codegen``) and evaluation both call it::

    from weighted_mtp.execution import Limits, run_tests, run_many
    verdict = run_tests(source, tests, limits=Limits(time_s=2.0, memory_mb=512))
    verdict.passed, verdict.status
    verdicts = run_many(jobs, workers=4)

Kedro-free. The threat model, the mechanisms and their limits are in docs/EXECUTION.md.
"""

from .compare import normalise_output, outputs_match
from .limits import Limits
from .runner import Job, run_many, run_tests
from .sandbox import Isolation, SandboxUnavailableError, build_isolation, detect_isolation
from .verdict import Status, Verdict

__all__ = [
    "Isolation",
    "Job",
    "Limits",
    "SandboxUnavailableError",
    "Status",
    "Verdict",
    "build_isolation",
    "detect_isolation",
    "normalise_output",
    "outputs_match",
    "run_many",
    "run_tests",
]
