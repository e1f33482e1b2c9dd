"""Wiring of the stage1 pipeline."""

from kedro.pipeline import Pipeline, node

from weighted_mtp.pipelines.shared import validate_config_node
from weighted_mtp.pipelines.stage1.nodes import load_model, pretrain_micro, train_stage1

DATA = ["tokenizer", "train_records", "validation_records"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            validate_config_node,
            node(load_model, inputs=["tokenizer", "run_config"], outputs="policy_model",
                 name="load_model", tags=["stage1"]),
            node(pretrain_micro, inputs=["policy_model", *DATA, "run_config"], outputs="warm_model",
                 name="pretrain_micro", tags=["stage1"]),
            node(train_stage1, inputs=["warm_model", *DATA, "parameters"],
                 outputs=["stage1_model", "stage1_metrics"], name="train_stage1", tags=["stage1"]),
        ]
    )
