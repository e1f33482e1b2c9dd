"""Wiring of the data_processing pipeline."""

from kedro.pipeline import Pipeline, node

from weighted_mtp.pipelines.data_processing.nodes import (
    build_datasets,
    build_records,
    load_tokenizer,
    split_test_problems,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                split_test_problems,
                inputs=["raw_problems", "params:dataset"],
                outputs=["development_problems", "test_problems"],
                name="split_test_problems",
                tags=["data"],
            ),
            node(
                build_records,
                inputs=["development_problems", "params:dataset"],
                outputs="alpaca_records",
                name="build_records",
                tags=["data"],
            ),
            node(
                build_datasets,
                inputs=["alpaca_records", "params:dataset"],
                outputs=["train_records", "validation_records"],
                name="build_datasets",
                tags=["data"],
            ),
            node(
                load_tokenizer,
                inputs=["train_records", "params:dataset", "params:models.policy.path"],
                outputs="tokenizer",
                name="load_tokenizer",
                tags=["data"],
            ),
        ]
    )
