"""weighted-mtp: critic-weighted multi-token-prediction fine-tuning as a Kedro project."""

__version__ = "0.1.0"
