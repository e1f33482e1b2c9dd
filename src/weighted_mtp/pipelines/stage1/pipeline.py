"""Wiring of the stage1 pipeline."""

from kedro.pipeline import Pipeline, node

from weighted_mtp.pipelines.stage1.nodes import load_model, pretrain_micro, train_stage1

DATA = ["tokenizer", "train_records", "validation_records"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(load_model, inputs=["tokenizer", "params:models.policy", "params:training.distributed"],
                 outputs="policy_model",
                 name="load_model", tags=["stage1"]),
            node(pretrain_micro,
                 inputs=["policy_model", *DATA, "params:training", "params:models.policy", "params:dataset.max_length"],
                 outputs="warm_model", name="pretrain_micro", tags=["stage1"]),
            node(train_stage1,
                 inputs=["warm_model", *DATA, "params:project", "params:training", "params:models.policy",
                         "params:dataset.max_length"],
                 outputs=["stage1_model", "stage1_metrics"], name="train_stage1", tags=["stage1"]),
        ]
    )
