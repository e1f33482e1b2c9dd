"""Best model → completions on held-out test problems → sandboxed runs → pass@k."""
from weighted_mtp.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
