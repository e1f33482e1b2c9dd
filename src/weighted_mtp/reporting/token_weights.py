"""Which tokens the critic weighted: V_t, δ_t, A_t and w_t of a few validation solutions.

Kedro-free. The numbers come from the same functions stage 2 trains with
(:func:`compute_td_errors`, :func:`compute_gae_advantages`, :func:`build_weights`), applied
to one batch made of the shown rows, so the page shows what the weighting does rather
than a re-implementation of it. Whitening uses that batch's statistics: the weights show
the pattern the critic imposes, not the exact numbers of any training step (those
whiten over each training batch's ``train_on`` rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from weighted_mtp.data import MTPCollator, encode_records, has_labels, resolve_pad_token_id
from weighted_mtp.config.schema import Stage2Config
from weighted_mtp.value_weighting.diagnostics import weigh

# Tokens decoded together to find one token's text: enough for a multi-byte character
# split over byte-level tokens, and for SentencePiece's leading-space marker.
_DECODE_WINDOW = 8


@dataclass(frozen=True)
class TokenRow:
    """One shown solution, response tokens only (EOS included).

    Attributes:
        task_id: The record's ``task_id``.
        problem_id: The record's ``problem_id``.
        is_correct: The verified outcome; R = 1.0 if true.
        truncated: The row was cut at ``max_length`` (its last token is not terminal).
        prompt: The prompt text the model read before the response.
        tokens: Each response token's text.
        start_value: V_{p−1}, the critic's estimate before the first response token.
        values: V_t after each response token.
        deltas: δ_t, the TD error of each token.
        advantages: A_t (GAE); equal to ``deltas`` when ``td_lambda`` is 0.
        weights: w_t, the weight stage 2 would put on each token.
        ids: The response token ids.
        bug_span: For an incorrect solution, the positions that differ from the nearest
            correct solution of its problem (docs/METHOD.md, "Critic quality"); else empty.
    """

    task_id: str
    problem_id: str
    is_correct: bool
    truncated: bool
    prompt: str
    tokens: list[str]
    start_value: float
    values: list[float]
    deltas: list[float]
    advantages: list[float]
    weights: list[float]
    ids: tuple[int, ...] = ()
    bug_span: frozenset[int] = frozenset()

    @property
    def reward(self) -> float:
        return 1.0 if self.is_correct else 0.0


def select_records(
    records: Sequence[Mapping[str, Any]], n_correct: int = 3, n_incorrect: int = 3
) -> list[Mapping[str, Any]]:
    """Pick correct and incorrect solutions, preferring pairs from the same problem.

    A correct and an incorrect solution of one problem side by side show what the critic
    tells apart; rows from other problems fill up what pairs cannot. Deterministic: the
    records' own order decides, and the result keeps that order.
    """
    index = {id(record): position for position, record in enumerate(records)}
    correct: list[Mapping[str, Any]] = []
    incorrect: list[Mapping[str, Any]] = []
    for rows in _group_by_problem(records).values():
        good = next((r for r in rows if r["is_correct"]), None)
        bad = next((r for r in rows if not r["is_correct"]), None)
        if good is not None and bad is not None and len(correct) < n_correct and len(incorrect) < n_incorrect:
            correct.append(good)
            incorrect.append(bad)
    for record in records:
        bucket, limit = (correct, n_correct) if record["is_correct"] else (incorrect, n_incorrect)
        if len(bucket) < limit and all(record is not chosen for chosen in bucket):
            bucket.append(record)
    return sorted(correct + incorrect, key=lambda record: index[id(record)])


def _group_by_problem(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record["problem_id"]), []).append(record)
    return groups


@torch.no_grad()
def token_weight_rows(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    td: Stage2Config,
    max_length: int,
    device: torch.device | str = "cpu",
) -> list[TokenRow]:
    """V, δ, A and w of every response token of ``records``, computed as one batch.

    Args:
        model: A :class:`MetaLlamaMTPAdapter` (only its values are used), already on ``device``.
        tokenizer: The tokenizer the model was trained with.
        records: Alpaca records to show; rows whose prompt fills ``max_length`` are dropped.
        td: The ``training.stage2`` block (its TD weighting settings).
        max_length: Row length the data was encoded with (``dataset.max_length``).
        device: Where the forward pass runs.

    Returns:
        One :class:`TokenRow` per kept record, in order.
    """
    rows = [row for row in encode_records(records, tokenizer, max_length) if has_labels(row)]
    if not rows:
        return []
    batch = MTPCollator(resolve_pad_token_id(tokenizer))(rows)
    was_training = model.training
    model.eval()
    values = model(batch["input_ids"].to(device), return_logits=False).values.float().cpu()  # (B, S)
    model.train(was_training)
    deltas, advantages, weights = weigh(values, batch, td)
    prompts = [_prompt_text(tokenizer, row) for row in rows]
    return [
        _token_row(tokenizer, batch, b, prompts[b], td.initial_value,
                   (values[b], deltas[b], advantages[b], weights[b]))
        for b in range(len(rows))
    ]


def _token_row(
    tokenizer: Any,
    batch: Mapping[str, Any],
    b: int,
    prompt: str,
    initial_value: float,
    series: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> TokenRow:
    """Cut row ``b``'s response positions p..T out of its (V, δ, A, w) rows ``(S,)``."""
    values, deltas, advantages, weights = series
    positions = torch.nonzero(batch["loss_mask"][b] != 0).flatten()
    first = int(positions[0])
    ids = batch["input_ids"][b, positions].tolist()
    return TokenRow(
        task_id=batch["task_id"][b],
        problem_id=batch["problem_id"][b],
        is_correct=bool(batch["is_correct"][b]),
        truncated=bool(batch["truncated"][b]),
        prompt=prompt,
        tokens=token_texts(tokenizer, ids),
        start_value=float(values[first - 1]) if first > 0 else initial_value,
        values=values[positions].tolist(),
        deltas=deltas[positions].tolist(),
        advantages=advantages[positions].tolist(),
        weights=weights[positions].tolist(),
        ids=tuple(ids),
    )


def token_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token's text, such that joined they read as the decoded sequence.

    A token decoded alone loses context (half of a multi-byte character, SentencePiece's
    leading space), so each token's text is what it adds to a short window before it.
    """
    texts = []
    for i, token_id in enumerate(ids):
        window = list(ids[max(0, i - _DECODE_WINDOW):i])
        before = tokenizer.decode(window, skip_special_tokens=False)
        after = tokenizer.decode([*window, token_id], skip_special_tokens=False)
        alone = after[len(before):] if after.startswith(before) else tokenizer.decode([token_id])
        texts.append(alone)
    return texts


def _prompt_text(tokenizer: Any, row: Mapping[str, Any]) -> str:
    """The prompt as the model read it (BOS dropped)."""
    prompt_ids = [t for t, label in zip(row["input_ids"], row["labels"]) if label < 0]
    return tokenizer.decode(prompt_ids, skip_special_tokens=True)
