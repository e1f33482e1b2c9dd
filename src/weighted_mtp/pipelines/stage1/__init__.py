"""Model loading, micro warm-up and stage 1 (critic or rho-1 reference)."""
from weighted_mtp.pipelines.stage1.pipeline import create_pipeline

__all__ = ["create_pipeline"]
