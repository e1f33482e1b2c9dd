"""Raw problems → Alpaca train/validation JSONL and a tokenizer."""
from weighted_mtp.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
