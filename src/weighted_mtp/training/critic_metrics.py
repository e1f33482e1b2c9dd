"""How good the critic is, measured on the validation responses (docs/METHOD.md, "Critic quality").

The value loss alone says little: a head that predicts the class balance everywhere has a
small loss and is useless for weighting. What the method needs is (1) a value that ranks
correct programs above incorrect ones — overall, and, harder, among programs written for
the same problem — and (2) TD errors that are most negative where a program goes wrong.

The dataset makes (2) measurable: its incorrect solutions are small mutants of correct ones,
so a token-level diff of an incorrect response against the nearest correct solution of the
same problem marks the *bug span*. The most negative TD error of that response should fall
inside it more often than a uniformly random token would (the span's share of the response).

Rows are collected per validation batch (host lists, small: a few hundred rows) and the
figures are computed once at the end, over all ranks' rows.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from weighted_mtp.data.diff import bug_span
from weighted_mtp.runtime.distributed import all_gather_objects
from weighted_mtp.value_weighting import build_weights
from weighted_mtp.value_weighting.diagnostics import td_advantages


@dataclass(frozen=True)
class CriticRow:
    """One validation response as the critic saw it.

    Attributes:
        problem_id: The problem it answers (pairs for the within-problem AUROC).
        is_correct: Its verified outcome.
        last_value: V_{T−1}, the value after the last response token but one: the last
            state whose value is trained (it emits the final token).
        tokens: The response token ids (EOS included).
        deltas: δ_t of every response token.
        weights: w_t of every response token, whitened over all validation responses
            (:func:`with_global_weights`; empty until then).
        advantages: The TD errors, or GAE advantages when ``td_lambda`` > 0: what is whitened.
        truncated: The row was cut at ``max_length`` (its last token is not the EOS).
    """

    problem_id: str
    is_correct: bool
    last_value: float
    tokens: tuple[int, ...]
    deltas: tuple[float, ...]
    weights: tuple[float, ...]
    truncated: bool = False
    advantages: tuple[float, ...] = ()

    @property
    def program_length(self) -> int:
        """Tokens of the program itself: the response without its final EOS, whose δ is
        the outcome's surprise (R − V_{T−1}) rather than a judgement of a token."""
        return len(self.tokens) if self.truncated else max(len(self.tokens) - 1, 1)


def critic_rows(values: torch.Tensor, batch: Mapping[str, Any], td: Any) -> list[CriticRow]:
    """The :class:`CriticRow` of every row of ``batch`` that has response tokens.

    Args:
        values: ``(B, S)`` values of the batch (detached).
        batch: The collated batch (``input_ids``, ``loss_mask``, ``rewards``, ``truncated``,
            ``is_correct``, ``problem_id``).
        td: The ``training.stage2`` block (its TD settings).
    """
    values = values.detach().float()
    deltas, advantages = td_advantages(values, batch, td)
    mask = batch["loss_mask"] != 0
    rows = []
    for b in range(values.shape[0]):
        positions = torch.nonzero(mask[b]).flatten()
        if positions.numel() == 0:
            continue
        last_state = int(positions[-1]) - 1  # V_{T−1}; for a one-token response, V_{p−1}
        last_value = float(values[b, last_state]) if last_state >= 0 else float(td.initial_value)
        rows.append(CriticRow(
            problem_id=str(batch["problem_id"][b]),
            is_correct=bool(batch["is_correct"][b]),
            last_value=last_value,
            tokens=tuple(batch["input_ids"][b, positions].tolist()),
            deltas=tuple(deltas[b, positions].tolist()),
            weights=(),
            advantages=tuple(advantages[b, positions].tolist()),
            truncated=bool(batch["truncated"][b]),
        ))
    return rows


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½.

    The Mann–Whitney statistic over all positive/negative pairs; NaN without both classes.
    """
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    wins, pairs = _pair_wins(positives, negatives)
    return wins / pairs if pairs else math.nan


def auroc_within_groups(
    scores: Sequence[float], labels: Sequence[bool], groups: Sequence[str]
) -> tuple[float, int, int]:
    """AUROC over positive/negative pairs of the same group only.

    Ranking correct above incorrect *across* problems can be done by recognising easy
    problems; within a problem the critic must see the bug. Each pair counts once, so a
    problem with more responses weighs more.

    Returns:
        ``(auroc, pairs, groups with at least one pair)``; NaN auroc when there is no pair.
    """
    by_group: dict[str, tuple[list[float], list[float]]] = {}
    for score, label, group in zip(scores, labels, groups):
        by_group.setdefault(group, ([], []))[0 if label else 1].append(score)
    wins = pairs = n_groups = 0.0
    for positives, negatives in by_group.values():
        group_wins, group_pairs = _pair_wins(positives, negatives)
        wins, pairs = wins + group_wins, pairs + group_pairs
        n_groups += group_pairs > 0
    return (wins / pairs if pairs else math.nan), int(pairs), int(n_groups)


def _pair_wins(positives: Sequence[float], negatives: Sequence[float]) -> tuple[float, int]:
    """(Σ over pairs of 1[p > n] + ½·1[p = n], number of pairs), in O((P+N) log(P+N))."""
    if not positives or not negatives:
        return 0.0, 0
    ordered = sorted(negatives)
    wins = 0.0
    for p in positives:
        below = _count_below(ordered, p)
        equal = _count_below(ordered, p, inclusive=True) - below
        wins += below + 0.5 * equal
    return wins, len(positives) * len(negatives)


def _count_below(ordered: Sequence[float], x: float, inclusive: bool = False) -> int:
    return bisect.bisect_right(ordered, x) if inclusive else bisect.bisect_left(ordered, x)


@dataclass(frozen=True)
class BugHits:
    """How well the lowest TD error and weight point at the bug, over incorrect responses.

    Attributes:
        responses: Incorrect responses with a non-empty bug span (a correct one to diff).
        delta_hit_rate: Share whose most negative δ lies in the span.
        weight_hit_rate: Same for the smallest weight (ties at the clip share the hit).
        chance: Mean share of the response the span covers: the rate of a random token.
        program_hit_rate: Share whose most negative δ *among the program's tokens* (the
            final EOS left out, :attr:`CriticRow.program_length`) lies in the span.
        program_chance: The span's mean share of the program's tokens.
    """

    responses: int
    delta_hit_rate: float
    weight_hit_rate: float
    chance: float
    program_hit_rate: float = math.nan
    program_chance: float = math.nan


def bug_hits(rows: Sequence[CriticRow]) -> BugHits:
    """Bug-localisation figures of ``rows`` (see the module docstring)."""
    correct_tokens: dict[str, list[tuple[int, ...]]] = {}
    for row in rows:
        if row.is_correct:
            correct_tokens.setdefault(row.problem_id, []).append(row.tokens)
    n = 0
    delta_hits = weight_hits = chance = program_hits = program_chance = 0.0
    for row in rows:
        if row.is_correct or not row.tokens:
            continue
        span = bug_span(row.tokens, correct_tokens.get(row.problem_id, ()))
        if not span:
            continue
        n += 1
        delta_hits += _share_in_span(row.deltas, span)
        weight_hits += _share_in_span(row.weights, span) if row.weights else math.nan
        chance += len(span) / len(row.tokens)
        program = row.program_length
        program_hits += _share_in_span(row.deltas[:program], span)
        program_chance += len([i for i in span if i < program]) / program
    if n == 0:
        return BugHits(0, math.nan, math.nan, math.nan)
    return BugHits(n, delta_hits / n, weight_hits / n, chance / n, program_hits / n, program_chance / n)


def _share_in_span(series: Sequence[float], span: frozenset[int]) -> float:
    """Share of the positions holding the minimum of ``series`` that lie in ``span``."""
    lowest = min(series)
    at_min = [i for i, x in enumerate(series) if x == lowest]
    return sum(i in span for i in at_min) / len(at_min)


def critic_figures(rows: Sequence[CriticRow]) -> dict[str, float]:
    """The critic-quality figures of ``rows`` (keys without the ``val_`` prefix).

    ``value_auroc``, ``value_auroc_within_problem`` (and its ``_pairs``),
    ``value_mean_correct`` / ``_incorrect`` (V_{T−1}), ``weights_mean_correct`` /
    ``_incorrect`` and ``td_mean_correct`` / ``_incorrect`` (over tokens),
    ``bug_hit_rate`` (most negative δ in the span), ``bug_hit_rate_weight``,
    ``bug_hit_chance``, ``bug_hit_rate_program`` / ``bug_hit_chance_program`` (the same
    without the final EOS, whose δ is the outcome's surprise) and ``bug_responses``. NaN where a class is missing.
    """
    scores = [row.last_value for row in rows]
    labels = [row.is_correct for row in rows]
    within, pairs, _ = auroc_within_groups(scores, labels, [row.problem_id for row in rows])
    hits = bug_hits(rows)
    figures = {
        "value_auroc": auroc(scores, labels),
        "value_auroc_within_problem": within,
        "value_auroc_within_problem_pairs": float(pairs),
        "bug_hit_rate": hits.delta_hit_rate,
        "bug_hit_rate_weight": hits.weight_hit_rate,
        "bug_hit_chance": hits.chance,
        "bug_hit_rate_program": hits.program_hit_rate,
        "bug_hit_chance_program": hits.program_chance,
        "bug_responses": float(hits.responses),
    }
    for name, correct in (("correct", True), ("incorrect", False)):
        chosen = [row for row in rows if row.is_correct == correct]
        figures[f"value_mean_{name}"] = _mean(row.last_value for row in chosen)
        figures[f"weights_mean_{name}"] = _mean(w for row in chosen for w in row.weights)
        figures[f"td_mean_{name}"] = _mean(d for row in chosen for d in row.deltas)
    return figures


def _mean(numbers: Iterable[float]) -> float:
    total = count = 0
    for x in numbers:
        total, count = total + x, count + 1
    return total / count if count else math.nan


def with_global_weights(rows: Sequence[CriticRow], td: Any) -> list[CriticRow]:
    """The rows with the weights stage 2 would give their tokens, whitened over *all* the
    rows' tokens at once, so the figures do not depend on how validation was batched or
    sharded over ranks."""
    lengths = [len(row.advantages) for row in rows]
    if not rows or sum(lengths) == 0:
        return list(rows)
    x = torch.tensor([a for row in rows for a in row.advantages], dtype=torch.float64).unsqueeze(0)
    weights = build_weights(x, torch.ones_like(x), td.beta, td.weight_clip_min, td.weight_clip_max,
                            normalize_mean=td.normalize_mean)[0].tolist()
    out, start = [], 0
    for row, length in zip(rows, lengths):
        out.append(dataclasses.replace(row, weights=tuple(weights[start:start + length])))
        start += length
    return out


class CriticAccumulator:
    """Collects :class:`CriticRow` s batch by batch; :meth:`compute` gathers every rank's.

    Args:
        td: Stage-2 weighting options used for the diagnostic weights.
    """

    def __init__(self, td: Any) -> None:
        self.td = td
        self.rows: list[CriticRow] = []

    def update(self, values: torch.Tensor, batch: Mapping[str, Any]) -> None:
        """Add the rows of one batch (filler rows without response tokens add nothing)."""
        self.rows.extend(critic_rows(values, batch, self.td))

    def compute(self) -> dict[str, float]:
        """Figures over all ranks' rows (every rank must call it under torchrun)."""
        gathered = all_gather_objects(self.rows)
        rows = [row for rows in gathered for row in rows]  # type: ignore[union-attr]
        return critic_figures(with_global_weights(rows, self.td))
