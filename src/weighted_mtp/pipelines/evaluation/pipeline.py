"""Wiring of the evaluation pipeline (``kedro run --pipelines evaluation``)."""

from kedro.pipeline import Pipeline, node

from weighted_mtp.pipelines.evaluation.nodes import (
    generate_test_completions,
    score_test_completions,
    summarise_evaluation,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(generate_test_completions,
                 inputs=["best_model@path", "test_problems", "raw_problems", "train_records",
                         "validation_records", "params:evaluation", "params:models.policy"],
                 outputs="generated_completions", name="generate_test_completions", tags=["evaluation"]),
            node(score_test_completions,
                 inputs=["generated_completions", "test_problems", "raw_problems", "params:execution"],
                 outputs="completions", name="score_test_completions", tags=["evaluation"]),
            node(summarise_evaluation, inputs=["completions", "params:evaluation"],
                 outputs=["evaluation", "evaluation_metrics", "evaluation_report"],
                 name="summarise_evaluation", tags=["evaluation"]),
        ]
    )
