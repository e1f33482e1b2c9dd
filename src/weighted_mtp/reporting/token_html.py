"""A self-contained HTML page of token weights: one coloured span per response token.

No external JS, CSS or fonts, so the page opens from an MLflow artifact, a file or a
notebook alike. Every CSS rule is scoped under ``.wmtp-tw`` so the page can be inlined in
a notebook without restyling it. Numbers sit in ``title`` (hover) and ``data-*``
attributes (for scripts and tests).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from weighted_mtp.reporting.token_weights import TokenRow
from weighted_mtp.config.schema import Stage2Config

WHITE = (255, 255, 255)
LOW = (67, 147, 195)    # blue: the critic down-weights this token
HIGH = (244, 140, 40)   # orange: the critic up-weights this token
_MIN_LOG_BOUND = 1e-3   # a clip_min of 0 would put w = 0 at minus infinity

_CSS = """
.wmtp-tw { font-family: system-ui, sans-serif; color: #222; max-width: 1100px; margin: 1em auto; }
.wmtp-tw h1 { font-size: 1.4em; } .wmtp-tw h2 { font-size: 1.05em; margin: 0 0 .3em; }
.wmtp-tw .settings, .wmtp-tw .note, .wmtp-tw .stats { color: #555; font-size: .9em; margin: .3em 0; }
.wmtp-tw section { border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; margin: 1em 0; }
.wmtp-tw section.correct { border-left: 6px solid #2e7d32; }
.wmtp-tw section.incorrect { border-left: 6px solid #c62828; }
.wmtp-tw pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
  line-height: 1.55; white-space: pre-wrap; word-break: break-all; margin: .4em 0; }
.wmtp-tw .tok { border-radius: 2px; cursor: help; }
.wmtp-tw .tok:hover { outline: 1px solid #000; }
.wmtp-tw .legend { display: flex; gap: .8em; align-items: flex-start; margin: .8em 0 1.4em; font-size: .9em; }
.wmtp-tw .scale { position: relative; width: 420px; }
.wmtp-tw .bar { height: 14px; border: 1px solid #aaa; }
.wmtp-tw .tick { position: absolute; top: 18px; transform: translateX(-50%); font-size: .8em; }
.wmtp-tw details pre { color: #666; }
.wmtp-tw .tok.bug { text-decoration: underline wavy #c62828; text-underline-offset: 3px; }
"""


def weight_colour(weight: float, clip_min: float, clip_max: float) -> str:
    """Background colour of a token: white at w = 1, blue towards ``clip_min``, orange
    towards ``clip_max``, linear in log w on each side (w = 2 and w = 0.5 look as strong).
    """
    low, high = max(clip_min, _MIN_LOG_BOUND), max(clip_max, 1.0)
    w = max(weight, _MIN_LOG_BOUND)
    if w >= 1.0:
        share, target = (math.log(w) / math.log(high) if high > 1.0 else 0.0), HIGH
    else:
        share, target = (math.log(w) / math.log(low) if low < 1.0 else 1.0), LOW
    share = min(max(share, 0.0), 1.0)
    rgb = (round(white + share * (end - white)) for white, end in zip(WHITE, target))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def render_token_report(
    rows: Sequence[TokenRow], td: Stage2Config, heading: str, notes: Sequence[str] = ()
) -> str:
    """The whole page: heading, settings, legend, then one section per row.

    Args:
        rows: From :func:`~weighted_mtp.reporting.token_weights.token_weight_rows`.
        td: The weighting options the rows were computed with (shown, and the colour range).
        heading: Page title, e.g. ``"Token weights: verifiable"``.
        notes: Extra sentences shown under the settings (e.g. "this recipe trains uniformly").

    Returns:
        An HTML document (UTF-8, no external resources).
    """
    n_tokens = sum(len(row.tokens) for row in rows)
    settings = (f"β = {td.beta:g}, γ = {td.gamma:g}, λ = {td.td_lambda:g}, initial value "
                f"{td.initial_value:g}, clip [{td.weight_clip_min:g}, {td.weight_clip_max:g}]"
                f"{', normalised to mean 1' if td.normalize_mean else ''}. {len(rows)} solutions, "
                f"{n_tokens} response tokens, whitened together.")
    parts = [
        f"<h1>{_text(heading)}</h1>",
        f'<p class="settings">{_text(settings)}</p>',
        *(f'<p class="note">{_text(note)}</p>' for note in notes),
        _legend(td.weight_clip_min, td.weight_clip_max),
        *(_section(row, td) for row in rows),
    ]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_text(heading)}</title></head>\n<body><div class=\"wmtp-tw\">"
            f"<style>{_CSS}</style>\n{body}\n</div></body></html>\n")


def _section(row: TokenRow, td: Stage2Config) -> str:
    """One solution: outcome, value trajectory summary, prompt (folded), coloured tokens."""
    outcome = "correct" if row.is_correct else "incorrect"
    mark = "✓" if row.is_correct else "✗"
    mean_w = sum(row.weights) / len(row.weights)
    stats = (f"R = {row.reward:g}{' (truncated: last token not terminal)' if row.truncated else ''}; "
             f"V before the response {row.start_value:.3f}, after its last token {row.values[-1]:.3f}; "
             f"{len(row.tokens)} tokens, mean w {mean_w:.3f}, "
             f"min {min(row.weights):.3f}, max {max(row.weights):.3f}")
    if row.bug_span:
        lowest = min(range(len(row.deltas)), key=row.deltas.__getitem__)
        stats += (f"; bug span (underlined) {len(row.bug_span)} of {len(row.tokens)} tokens, the "
                  f"most negative δ is {'inside' if lowest in row.bug_span else 'outside'} it")
    spans = "".join(_token_span(row, t, td) for t in range(len(row.tokens)))
    return (f'<section class="{outcome}" data-task-id="{_attr(row.task_id)}">'
            f"<h2>{mark} {outcome} · {_text(row.task_id)}</h2>"
            f'<p class="stats">{_text(stats)}</p>'
            f"<details><summary>prompt</summary><pre>{_text(row.prompt)}</pre></details>"
            f'<pre class="code">{spans}</pre></section>')


def _token_span(row: TokenRow, t: int, td: Stage2Config) -> str:
    """A token with its colour, hover text and exact numbers."""
    w, v, d, a = row.weights[t], row.values[t], row.deltas[t], row.advantages[t]
    hover = f"V_t = {v:.4f}\nδ_t = {d:+.4f}\n" + (f"A_t = {a:+.4f}\n" if td.td_lambda > 0 else "") + f"w_t = {w:.4f}"
    shown = row.tokens[t].replace("\n", "↵\n") or "∅"
    classes = "tok bug" if t in row.bug_span else "tok"
    return (f'<span class="{classes}" style="background:{weight_colour(w, td.weight_clip_min, td.weight_clip_max)}" '
            f'title="{_attr(hover)}" data-v="{v:.7g}" data-delta="{d:.7g}" data-a="{a:.7g}" '
            f'data-w="{w:.7g}">{_text(shown)}</span>')


def _legend(clip_min: float, clip_max: float) -> str:
    """A gradient bar matching :func:`weight_colour`, with ticks at clip_min, 1, clip_max."""
    low, high = max(clip_min, _MIN_LOG_BOUND), max(clip_max, 1.0 + 1e-9)
    def position(w: float) -> float:
        return 100.0 * math.log(w / low) / math.log(high / low)
    one = position(1.0) if low < 1.0 else 0.0
    low_c, high_c = weight_colour(low, clip_min, clip_max), weight_colour(high, clip_min, clip_max)
    bar = f"background:linear-gradient(to right,{low_c} 0%,#ffffff {one:.1f}%,{high_c} 100%)"
    ticks = "".join(f'<span class="tick" style="left:{pos:.1f}%">{label:g}</span>'
                    for pos, label in ((0.0, clip_min), (one, 1.0), (100.0, clip_max)))
    return (f'<div class="legend"><span>token weight w_t (log scale): blue = down-weighted, '
            f'orange = up-weighted</span><div class="scale"><div class="bar" style="{bar}">'
            f"</div>{ticks}</div></div>")


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)
