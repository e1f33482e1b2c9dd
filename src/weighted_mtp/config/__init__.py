"""The run configuration: typed models of the merged parameters and their validation."""

from weighted_mtp.config.schema import (
    EvaluationConfig,
    ExecutionConfig,
    ModelsConfig,
    PolicyModelConfig,
    ProjectConfig,
    RunConfig,
    TrainingConfig,
)
from weighted_mtp.config.validate import validate_block, validate_config

__all__ = ["EvaluationConfig", "ExecutionConfig", "ModelsConfig", "PolicyModelConfig", "ProjectConfig",
           "RunConfig", "TrainingConfig", "validate_block", "validate_config"]
