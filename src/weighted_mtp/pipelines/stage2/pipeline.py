"""Wiring of the stage2 pipeline."""

from kedro.pipeline import Pipeline, node

from weighted_mtp.pipelines.stage2.nodes import (
    evaluate,
    plot_token_weight_histogram,
    report_metrics,
    report_token_weights,
    save_best,
    train_stage2,
)

DATA = ["tokenizer", "train_records", "validation_records"]
REPORT_INPUTS = ["tokenizer", "validation_records", "params:training", "params:models.policy",
                 "params:dataset.max_length"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(train_stage2,
                 inputs=["stage1_model", *DATA, "params:project", "params:training", "params:models",
                         "params:dataset.max_length"],
                 outputs=["stage2_model", "stage2_summary"], name="train_stage2", tags=["stage2"]),
            node(save_best, inputs=["stage2_model", "stage2_summary", "tokenizer"], outputs="best_model@model",
                 name="save_best", tags=["stage2"]),
            node(evaluate, inputs=["best_model@model", *REPORT_INPUTS], outputs="best_model_metrics",
                 name="evaluate", tags=["evaluation"]),
            node(report_metrics, inputs=["stage1_metrics", "stage2_summary", "best_model_metrics"],
                 outputs="metrics", name="report_metrics", tags=["evaluation"]),
            node(report_token_weights,
                 inputs=["best_model@model", "tokenizer", "validation_records", "params:project", "params:training",
                         "params:models.policy", "params:dataset.max_length"],
                 outputs=["token_weights_report", "token_value_plots"], name="report_token_weights",
                 tags=["evaluation"]),
            node(plot_token_weight_histogram, inputs=["stage2_model", *REPORT_INPUTS],
                 outputs="token_weight_histogram", name="plot_token_weight_histogram", tags=["evaluation"]),
        ]
    )
