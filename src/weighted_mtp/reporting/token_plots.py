"""PNG-ready figures of the critic's value along each shown solution.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot: no global
figure registry and no GUI backend, so they render headless (Agg) inside a pipeline run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from matplotlib.figure import Figure

from weighted_mtp.reporting.token_html import weight_colour
from weighted_mtp.reporting.token_weights import TokenRow

CORRECT_COLOUR = "#2e7d32"
INCORRECT_COLOUR = "#c62828"
OVERVIEW = "00_overview.png"


def value_figures(rows: Sequence[TokenRow], clip_min: float, clip_max: float) -> dict[str, Figure]:
    """One figure per row plus an overview, keyed by PNG file name (for MatplotlibDataset).

    Args:
        rows: The shown rows.
        clip_min: Lower weight clip (sets the bar colours' range).
        clip_max: Upper weight clip.

    Returns:
        ``{"00_overview.png": ..., "01_correct_<task>.png": ..., ...}``.
    """
    figures = {OVERVIEW: overview_figure(rows)}
    for index, row in enumerate(rows, start=1):
        outcome = "correct" if row.is_correct else "incorrect"
        name = f"{index:02d}_{outcome}_{re.sub(r'[^A-Za-z0-9]+', '_', row.task_id).strip('_')}.png"
        figures[name] = row_figure(row, clip_min, clip_max)
    return figures


def row_figure(row: TokenRow, clip_min: float, clip_max: float) -> Figure:
    """V_t over the response (top) and w_t per token (bottom, log scale, coloured as the page).

    Position 0 is V_{p−1}, the estimate before the response; position t ≥ 1 is the value
    after the t-th response token, so each step of the line is that token's δ (the last
    step is judged against R instead, the dashed line).
    """
    width = 10.0
    figure = Figure(figsize=(width, 4.2))
    # Fixed margins: a constrained layout would double the render time of every figure.
    figure.subplots_adjust(left=0.07, right=0.98, top=0.92, bottom=0.12, hspace=0.08)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    positions = list(range(len(row.values) + 1))
    colour = CORRECT_COLOUR if row.is_correct else INCORRECT_COLOUR
    trajectory = [row.start_value, *row.values]
    top.plot(positions, trajectory, color=colour, linewidth=1.4, label="V_t")
    top.axhline(row.reward, color="#444", linestyle="--", linewidth=1, label=f"R = {row.reward:g}")
    top.set_ylim(min(-0.05, min(trajectory) - 0.05), max(1.05, max(trajectory) + 0.05))
    top.set_ylabel("value V_t")
    top.legend(loc="best", fontsize=8)
    outcome = "correct" if row.is_correct else "incorrect"
    top.set_title(f"{row.task_id} ({outcome})", fontsize=10)
    colours = [weight_colour(w, clip_min, clip_max) for w in row.weights]
    # Bars from w = 1: up-weighted tokens rise, down-weighted ones hang (log scale).
    bar_points = max(0.5, min(4.0, 0.8 * 72 * width / max(len(row.weights), 1)))
    bottom.vlines(positions[1:], 1.0, row.weights, colors=colours, linewidth=bar_points)
    bottom.axhline(1.0, color="#444", linewidth=0.8)
    bottom.set_yscale("log")
    bottom.set_ylabel("weight w_t")
    bottom.set_xlabel("response token")
    return figure


def overview_figure(rows: Sequence[TokenRow]) -> Figure:
    """Every row's V_t against the fraction of its response read: correct rows should
    climb towards 1 and incorrect ones fall towards 0 if the critic learned anything."""
    figure = Figure(figsize=(7, 4))
    figure.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
    axes = figure.subplots()
    for row in rows:
        n = len(row.values)
        fractions = [t / n for t in range(n + 1)]
        colour = CORRECT_COLOUR if row.is_correct else INCORRECT_COLOUR
        axes.plot(fractions, [row.start_value, *row.values], color=colour, linewidth=1.2, alpha=0.8)
    axes.plot([], [], color=CORRECT_COLOUR, label="correct")
    axes.plot([], [], color=INCORRECT_COLOUR, label="incorrect")
    axes.set_xlim(0, 1)
    axes.set_ylim(bottom=min(-0.05, axes.get_ylim()[0]), top=max(1.05, axes.get_ylim()[1]))
    axes.set_xlabel("fraction of the response read")
    axes.set_ylabel("value V_t")
    axes.set_title("Critic value along the shown solutions", fontsize=10)
    axes.legend(loc="best", fontsize=8)
    return figure
