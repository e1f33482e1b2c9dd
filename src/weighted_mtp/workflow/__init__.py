"""Kedro-free steps the pipeline nodes delegate to: model set-up and recipe orchestration."""
