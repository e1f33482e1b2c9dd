"""Where an incorrect solution goes wrong: a token diff against the nearest correct one.

The shipped dataset's incorrect solutions are small mutants of correct ones (a missed edge
case, a wrong operator, a wrong case), so the tokens in which an incorrect response differs
from the nearest correct response of the same problem mark its bug. Two users of that:
the critic metrics measure whether the lowest TD error falls there (docs/METHOD.md,
"Critic quality"), and ``value_target: first_error`` trains the critic to drop its value
at the first differing token, as a process reward model learns from first-error labels.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from weighted_mtp.data.collate import IGNORE_INDEX

NO_ERROR = -1
"""``first_error`` of a row whose bug is not known (a correct row, or no correct sibling)."""


def bug_span(incorrect: Sequence[int], corrects: Iterable[Sequence[int]]) -> frozenset[int]:
    """Positions of ``incorrect`` that differ from the nearest of ``corrects``.

    Nearest = the highest :class:`difflib.SequenceMatcher` ratio. Replaced and inserted
    tokens are the span; where the incorrect program only *lacks* tokens, the token right
    after the gap (where it goes its own way) stands for the deletion. Empty when there is
    no correct solution or the sequences are equal.
    """
    best: difflib.SequenceMatcher | None = None
    for correct in corrects:
        matcher = difflib.SequenceMatcher(None, list(correct), list(incorrect), autojunk=False)
        if best is None or matcher.ratio() > best.ratio():
            best = matcher
    if best is None or not incorrect:
        return frozenset()
    span: set[int] = set()
    for tag, _, _, j1, j2 in best.get_opcodes():
        if tag in ("replace", "insert"):
            span.update(range(j1, j2))
        elif tag == "delete":
            span.add(min(j1, len(incorrect) - 1))
    return frozenset(span)


def response_ids(row: Mapping[str, Any]) -> tuple[int, ...]:
    """The response token ids of an encoded row (its labelled positions, EOS included)."""
    return tuple(t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX)


def mark_first_errors(rows: Sequence[MutableMapping[str, Any]]) -> int:
    """Set ``row["first_error"]`` on encoded rows: the absolute position of the first token
    in which an incorrect row differs from the nearest correct row of its problem, else
    :data:`NO_ERROR`. Correct siblings come from ``rows`` themselves (one split never looks
    into another).

    Returns:
        How many incorrect rows got a position.
    """
    correct: dict[str, list[tuple[int, ...]]] = {}
    for row in rows:
        if row["is_correct"]:
            correct.setdefault(str(row["problem_id"]), []).append(response_ids(row))
    marked = 0
    for row in rows:
        row["first_error"] = NO_ERROR
        if row["is_correct"]:
            continue
        span = bug_span(response_ids(row), correct.get(str(row["problem_id"]), ()))
        if span:
            start = next(i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
            row["first_error"] = start + min(span)
            marked += 1
    return marked
