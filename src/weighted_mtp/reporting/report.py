"""The token-weight report of a run: the page and the figures, from the validated training block."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from weighted_mtp.config.schema import TrainingConfig
from weighted_mtp.data import encode_records, has_labels
from weighted_mtp.data.diff import bug_span, response_ids
from weighted_mtp.reporting.token_html import render_token_report
from weighted_mtp.reporting.token_plots import value_figures
from weighted_mtp.reporting.token_weights import select_records, token_weight_rows
from weighted_mtp.runtime.device import resolve_device

logger = logging.getLogger(__name__)

ROWS_PER_OUTCOME = 3
"""Correct and incorrect solutions shown: enough to compare, few enough to read."""


def token_weight_report(
    model: Any,
    tokenizer: Any,
    validation: Sequence[Mapping[str, Any]],
    training: TrainingConfig,
    *,
    device: str,
    max_length: int,
    heading: str,
    rows_per_outcome: int = ROWS_PER_OUTCOME,
) -> tuple[str, dict[str, Figure]]:
    """HTML page and value figures for a few validation solutions, weighted as in stage 2.

    Args:
        model: The exported best model (adapter with its value head).
        tokenizer: Its tokenizer.
        validation: Validation records; ``rows_per_outcome`` correct and incorrect ones
            are shown.
        training: The ``training`` block (stage-2 weighting options; notes on stage 1).
        device: ``models.policy.device``.
        max_length: ``dataset.max_length``.
        heading: The page's title.
        rows_per_outcome: How many correct and how many incorrect solutions.

    Returns:
        ``(html, {png_name: figure})``.
    """
    td = training.stage2
    where = resolve_device(device)
    records = select_records(labelled_records(validation, tokenizer, max_length), rows_per_outcome, rows_per_outcome)
    rows = token_weight_rows(model.to(where), tokenizer, records, td, max_length, where)
    rows = with_bug_spans(rows, correct_responses(validation, tokenizer, max_length))
    logger.info("Token-weight report: %d solutions, %d response tokens",
                len(rows), sum(len(row.tokens) for row in rows))
    page = render_token_report(rows, td, heading, recipe_notes(training))
    return page, value_figures(rows, td.weight_clip_min, td.weight_clip_max)


def correct_responses(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int
) -> dict[str, list[tuple[int, ...]]]:
    """Response token ids of every correct record, by problem: what an incorrect solution
    is diffed against to find its bug span."""
    correct = [record for record in records if record["is_correct"]]
    responses: dict[str, list[tuple[int, ...]]] = {}
    for record, row in zip(correct, encode_records(correct, tokenizer, max_length)):
        responses.setdefault(str(record["problem_id"]), []).append(response_ids(row))
    return responses


def with_bug_spans(rows: Sequence[Any], correct: Mapping[str, Sequence[tuple[int, ...]]]) -> list[Any]:
    """The rows with the bug span of each incorrect one (empty without a correct one to diff)."""
    return [row if row.is_correct else
            dataclasses.replace(row, bug_span=bug_span(row.ids, correct.get(row.problem_id, ())))
            for row in rows]


def labelled_records(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int
) -> list[Mapping[str, Any]]:
    """The records that keep at least one response token at ``max_length`` (a prompt that
    fills the row leaves nothing to weight)."""
    rows = encode_records(records, tokenizer, max_length)
    return [record for record, row in zip(records, rows) if has_labels(row)]


def recipe_notes(training: TrainingConfig) -> list[str]:
    """Sentences that keep a reader from over-reading the page for this recipe."""
    stage1, stage2 = training.stage1, training.stage2
    notes = ["Hover over a token for V_t (value after it), δ_t (its TD error) and w_t "
             "(its weight). In an incorrect solution, underlined tokens differ from the nearest correct "
             "solution of the same problem: where the bug is. Weights are whitened over the tokens shown here, so they show the "
             "critic's pattern, not the exact weights of a training step."]
    if stage2.weighting != "td":
        notes.append(f"This recipe trains with weighting '{stage2.weighting}': these TD weights "
                     "were not used in its loss; they show what its value head would weight.")
    if not stage1.enabled and stage2.value_coef == 0:
        notes.append("The value head was never trained (stage 1 skipped, value_coef 0): "
                     "its values are those of an untrained head.")
    return notes
