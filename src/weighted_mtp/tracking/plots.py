"""PNG figures of a run: loss curves, per-head losses, the token-weight histogram.

Figures are built with ``matplotlib.figure.Figure`` directly, never ``pyplot``: no global
figure registry (the MLflow thread and the training thread may both draw) and no GUI
backend; saving a PNG uses the Agg canvas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

_HEAD = re.compile(r"^(train/head|val_head)\d+_loss$")


def save_stage_plots(rows: Iterable[tuple[int, dict[str, float]]], folder: Path) -> list[Path]:
    """Write ``{stage}_loss.png`` and ``{stage}_head_losses.png`` for each stage in ``rows``.

    Args:
        rows: ``(step, {"stage2/train/loss": x, "stage2/val_loss": y, ...})`` as logged.
        folder: Where to write.

    Returns:
        The files written (a stage without per-head losses gets no head plot).
    """
    series = _series_by_stage(rows)
    written = []
    for stage, curves in sorted(series.items()):
        loss = {name: points for name, points in curves.items() if name in ("train/loss", "val_loss")}
        if loss:
            written.append(_save(_line_figure(f"{stage}: loss", loss), folder / f"{stage}_loss.png"))
        heads = {name: points for name, points in curves.items() if _HEAD.match(name)}
        if heads:
            written.append(_save(_line_figure(f"{stage}: per-head CE", heads), folder / f"{stage}_head_losses.png"))
    return written


def weight_histogram(weights: Sequence[float], title: str, clip: tuple[float, float] | None = None) -> Figure:
    """Histogram of token weights, with the clip bounds drawn when given."""
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot()
    axes.hist(list(weights), bins=50, color="tab:blue", alpha=0.8)
    if clip is not None:
        for bound in clip:
            axes.axvline(bound, color="tab:red", linestyle="--", linewidth=1)
    axes.set(title=title, xlabel="token weight", ylabel="tokens")
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG at ``path``."""
    return _save(figure, path)


def _series_by_stage(rows: Iterable[tuple[int, dict[str, float]]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{"stage2": {"train/loss": [(step, value), ...], "val_loss": [...]}}``."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for step, metrics in rows:
        for key, value in metrics.items():
            stage, _, name = key.partition("/")
            series.setdefault(stage, {}).setdefault(name, []).append((step, value))
    return series


def _line_figure(title: str, curves: dict[str, list[tuple[int, float]]]) -> Figure:
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot()
    for name, points in sorted(curves.items()):
        steps, values = zip(*points)
        validation = name.startswith("val")
        axes.plot(steps, values, label=name, marker="o" if validation else None,
                  linestyle="--" if validation else "-", markersize=3)
    axes.set(title=title, xlabel="global step", ylabel="loss")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
