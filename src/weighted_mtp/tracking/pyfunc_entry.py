"""The code file of the logged MLflow model ("models from code"): loading the model runs
this file, which names the model class, so nothing is unpickled (docs/MLFLOW.md)."""

import mlflow

from weighted_mtp.tracking.mlflow_model import CodeGenerationModel

mlflow.models.set_model(CodeGenerationModel())
