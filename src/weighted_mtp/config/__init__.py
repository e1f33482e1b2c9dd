"""The run configuration: frozen pydantic models and the validator that builds them."""

from weighted_mtp.config.schema import (
    DatasetConfig, DistributedConfig, EvaluationConfig, ExecutionConfig, ExecutionLimitsConfig,
    MicroModelConfig, MlflowConfig, ModelsConfig, PolicyModelConfig, PretrainConfig, ProjectConfig,
    ReferenceModelConfig, RunConfig, Stage1Config, Stage2Config, TDEMAConfig, TrainingConfig,
)
from weighted_mtp.config.validate import validate_block, validate_config

__all__ = [
    "DatasetConfig", "DistributedConfig", "EvaluationConfig", "ExecutionConfig", "ExecutionLimitsConfig",
    "MicroModelConfig", "MlflowConfig", "ModelsConfig", "PolicyModelConfig", "PretrainConfig", "ProjectConfig",
    "ReferenceModelConfig", "RunConfig", "Stage1Config", "Stage2Config", "TDEMAConfig", "TrainingConfig",
    "validate_block", "validate_config",
]
