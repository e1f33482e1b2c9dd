"""Stage 2 (weighted MTP), evaluation of the best model, export and the metrics report."""
from weighted_mtp.pipelines.stage2.pipeline import create_pipeline

__all__ = ["create_pipeline"]
