"""Run reports: which tokens the critic weighted (HTML + PNG), and run histories.

Kedro-free; the stage-2 pipeline's ``report_token_weights`` node and
``notebooks/inspect_run.ipynb`` call these.
"""

from weighted_mtp.reporting.report import token_weight_report
from weighted_mtp.reporting.run_history import curve, curves_figure, experiment_metrics, load_history
from weighted_mtp.reporting.token_html import render_token_report, weight_colour
from weighted_mtp.reporting.token_plots import value_figures
from weighted_mtp.reporting.token_weights import (
    TokenRow,
    select_records,
    token_weight_rows,
)
from weighted_mtp.value_weighting.diagnostics import weigh

__all__ = [
    "TokenRow",
    "curve",
    "curves_figure",
    "experiment_metrics",
    "load_history",
    "render_token_report",
    "select_records",
    "token_weight_report",
    "token_weight_rows",
    "value_figures",
    "weigh",
    "weight_colour",
]
