"""Kedro catalog datasets for this project's files (records, tokenizers, model directories).

Referenced from ``conf/*/catalog.yml`` as ``weighted_mtp.datasets.<Name>``.
"""

from weighted_mtp.datasets.jsonl_dataset import JSONLDataset
from weighted_mtp.datasets.mlflow_metrics import MlflowMetricsDataset
from weighted_mtp.datasets.model_directory import ModelBundle, ModelDirectoryDataset, ModelDirectoryPath
from weighted_mtp.datasets.tokenizer_dataset import TokenizerDataset

__all__ = ["JSONLDataset", "MlflowMetricsDataset", "ModelBundle", "ModelDirectoryDataset", "ModelDirectoryPath", "TokenizerDataset"]
