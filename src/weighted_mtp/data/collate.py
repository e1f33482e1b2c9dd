"""Tokenisation of Alpaca records and dynamic-padding collation (docs/internal/CONTRACTS.md).

A row is ``[BOS] prompt response [EOS]``; prompt and response are tokenised separately so the
boundary is exact (a joint tokenisation could merge the prompt's last characters with the
response's first). Labels equal ``input_ids`` on the response and EOS and are -100 on BOS and
the prompt; labels are *not* shifted: the MTP loss compares head k at position t with
``labels[t + k]``.

A row longer than ``max_length`` is cut at ``max_length``; it then has no EOS and is flagged
``truncated`` so the value targets can treat its last token as non-terminal; a
``TokenizedDataset`` counts its cut rows and reports them in one WARNING. A prompt that
alone fills ``max_length`` leaves a row with no labelled token: it is kept, flagged
``truncated``, and callers may drop it (``TokenizedDataset(..., drop_unlabelled=True)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from weighted_mtp.data.prompts import format_prompt
from weighted_mtp.data.records import check_alpaca_record

IGNORE_INDEX = -100
"""Label of positions no loss is computed on (PyTorch's ``cross_entropy`` default)."""

logger = logging.getLogger(__name__)

EncodedRow = dict[str, Any]


def encode_record(
    record: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> EncodedRow:
    """Tokenises one Alpaca record into a training row.

    Args:
        record: An Alpaca record (``instruction``, ``input``, ``output``, ``is_correct``,
            ``problem_id``, ``task_id``).
        tokenizer: A tokenizer with ``bos_token_id`` and ``eos_token_id``.
        max_length: Maximum row length in tokens, BOS and EOS included (>= 2).

    Returns:
        ``{"input_ids": list[int], "labels": list[int], "is_correct": bool,
        "truncated": bool, "problem_id": str, "task_id": str}``.

    Raises:
        ValueError: If ``max_length`` < 2, the tokenizer lacks BOS/EOS, or the record lacks
            a field or has a non-boolean ``is_correct`` (the message names the record).
    """
    return encode_records([record], tokenizer, max_length)[0]


def encode_records(
    records: Sequence[Mapping[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[EncodedRow]:
    """Tokenises many records with two batched tokenizer calls; see ``encode_record``."""
    return _encode(records, tokenizer, max_length)[0]


def _encode(
    records: Sequence[Mapping[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[list[EncodedRow], list[int]]:
    """The encoded rows, and each row's length in tokens before truncation."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (BOS + one token), got {max_length}")
    bos_id, eos_id = _bos_eos_ids(tokenizer)
    texts = [_record_texts(record, index) for index, record in enumerate(records)]
    if not texts:
        return [], []
    prompts = _token_ids(tokenizer, [prompt for prompt, _ in texts])
    responses = _token_ids(tokenizer, [response for _, response in texts])
    rows = [
        _assemble(record, prompt, response, bos_id, eos_id, max_length)
        for record, prompt, response in zip(records, prompts, responses)
    ]
    return rows, [2 + len(prompt) + len(response) for prompt, response in zip(prompts, responses)]


def encode_prompts(
    prompts: Sequence[tuple[str, str]], tokenizer: PreTrainedTokenizerBase
) -> list[list[int]]:
    """Token ids of ``[BOS] prompt`` for generation: a training row's ids before the response.

    Uses the same template and the same separate tokenisation as ``encode_records``, so a
    model sees at generation exactly the prefix it was trained to continue.

    Args:
        prompts: ``(instruction, input)`` pairs; an empty input selects the template without
            an ``### Input:`` section.
        tokenizer: A tokenizer with ``bos_token_id`` and ``eos_token_id``.

    Returns:
        One id list per prompt, BOS first.
    """
    bos_id, _ = _bos_eos_ids(tokenizer)
    if not prompts:
        return []
    texts = [format_prompt(instruction, input_text) for instruction, input_text in prompts]
    return [[bos_id, *ids] for ids in _token_ids(tokenizer, texts)]


def _assemble(
    record: Mapping[str, Any],
    prompt_ids: list[int],
    response_ids: list[int],
    bos_id: int,
    eos_id: int,
    max_length: int,
) -> EncodedRow:
    """Concatenates ``[BOS] prompt response [EOS]``, labels the response and EOS, truncates."""
    input_ids = [bos_id, *prompt_ids, *response_ids, eos_id]
    labels = [IGNORE_INDEX] * (1 + len(prompt_ids)) + [*response_ids, eos_id]
    truncated = len(input_ids) > max_length
    return {
        "input_ids": input_ids[:max_length],
        "labels": labels[:max_length],
        "is_correct": record["is_correct"],
        "truncated": truncated,
        "problem_id": str(record["problem_id"]),
        "task_id": str(record["task_id"]),
    }


def _record_texts(record: Mapping[str, Any], index: int) -> tuple[str, str]:
    """The (prompt, response) texts of a record, after checking its fields."""
    try:
        check_alpaca_record(record)
    except ValueError as error:
        raise ValueError(f"record {record.get('task_id', f'#{index}')}: {error}") from error
    return format_prompt(record["instruction"], record.get("input", "")), record["output"]


def _token_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Batch-tokenises texts without special tokens (BOS/EOS are added by ``_assemble``)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _bos_eos_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The tokenizer's BOS and EOS ids, which every row needs."""
    bos_id, eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos_id is None or eos_id is None:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} needs bos and eos tokens, "
            f"found bos_token_id={bos_id}, eos_token_id={eos_id}"
        )
    return int(bos_id), int(eos_id)


@dataclass(frozen=True)
class MTPCollator:
    """Pads a list of encoded rows to the batch's longest row (right padding).

    Padding per batch rather than to ``max_length`` keeps short batches cheap. Use
    ``resolve_pad_token_id(tokenizer)`` for ``pad_token_id`` (a LLaMA tokenizer has no pad
    token; its EOS id is used instead).

    Attributes:
        pad_token_id: Id written into padded ``input_ids`` positions.
        pad_to_multiple_of: Optional; round the padded length up to a multiple of this
            (tensor-core friendly shapes on GPU).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {self.pad_to_multiple_of}")

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Builds a batch.

        Args:
            rows: Rows from ``encode_record``.

        Returns:
            ``input_ids`` (B,S) long, ``labels`` (B,S) long (-100 on prompt and padding),
            ``attention_mask`` (B,S) long (1 on real tokens), ``loss_mask`` (B,S) float
            (labels != -100), ``rewards`` (B,) float (1.0 if correct), ``truncated`` (B,)
            bool, ``is_correct`` (B,) bool, ``first_error`` (B,) long (the first bug token's
            position, -1 when unknown; see ``data/diff.py``), and ``task_id`` /
            ``problem_id`` lists of str.

        Raises:
            ValueError: If ``rows`` is empty.
        """
        if not rows:
            raise ValueError("cannot collate an empty batch")
        length = self._padded_length(max(len(row["input_ids"]) for row in rows))
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):
            n_tokens = len(row["input_ids"])
            input_ids[index, :n_tokens] = torch.as_tensor(row["input_ids"], dtype=torch.long)
            labels[index, :n_tokens] = torch.as_tensor(row["labels"], dtype=torch.long)
            attention_mask[index, :n_tokens] = 1
        is_correct = torch.tensor([bool(row["is_correct"]) for row in rows], dtype=torch.bool)
        return {
            "input_ids": input_ids,  # (B, S)
            "labels": labels,  # (B, S)
            "attention_mask": attention_mask,  # (B, S)
            "loss_mask": (labels != IGNORE_INDEX).float(),  # (B, S)
            "rewards": is_correct.float(),  # (B,)
            "truncated": torch.tensor([bool(row["truncated"]) for row in rows]),  # (B,)
            "is_correct": is_correct,  # (B,)
            "first_error": torch.tensor([int(row.get("first_error", -1)) for row in rows]),  # (B,)
            "task_id": [row["task_id"] for row in rows],
            "problem_id": [row["problem_id"] for row in rows],
        }

    def _padded_length(self, longest: int) -> int:
        """The batch length: the longest row, rounded up to ``pad_to_multiple_of``."""
        multiple = self.pad_to_multiple_of
        if multiple is None:
            return longest
        return -(-longest // multiple) * multiple


class TokenizedDataset(Dataset):
    """Records encoded once, at construction, as a map-style torch Dataset.

    Encoding up front (two batched tokenizer calls) makes every epoch's ``__getitem__`` a list
    lookup and surfaces bad records before training starts.

    Attributes:
        truncated: How many rows were cut at ``max_length`` (rows dropped afterwards for
            having no labelled token included); reported once in a WARNING.
    """

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        *,
        only_correct: bool = False,
        drop_unlabelled: bool = False,
        name: str = "",
    ) -> None:
        """Encodes ``records``.

        Args:
            records: Alpaca records.
            tokenizer: The model's tokenizer.
            max_length: Maximum row length (see ``encode_record``): ``dataset.max_length``.
            only_correct: Keep only rows of correct solutions (stage 2 trains on these).
            drop_unlabelled: Drop rows whose prompt fills ``max_length`` (no response token
                left to learn from).
            name: What the records are (``"training"``, ``"validation"``), for the warning.
        """
        rows, lengths = _encode(records, tokenizer, max_length)
        chosen = [(row, n) for row, n in zip(rows, lengths) if row["is_correct"] or not only_correct]
        self._rows = [row for row, _ in chosen if has_labels(row) or not drop_unlabelled]
        cut = [(row, n) for row, n in chosen if row["truncated"]]
        self.truncated = len(cut)
        if cut:
            _warn_cut(cut, len(chosen), len(chosen) - len(self._rows), max_length, name)

    @classmethod
    def from_rows(cls, rows: Iterable[EncodedRow]) -> TokenizedDataset:
        """A dataset over already-encoded rows (no tokenizer call)."""
        dataset = cls.__new__(cls)
        dataset._rows = list(rows)
        dataset.truncated = sum(row["truncated"] for row in dataset._rows)
        return dataset

    def filter(self, predicate: Callable[[EncodedRow], bool]) -> TokenizedDataset:
        """A new dataset with the rows for which ``predicate(row)`` is true, not re-encoded.

        Example: ``dataset.filter(lambda row: row["is_correct"])``.
        """
        return TokenizedDataset.from_rows(row for row in self._rows if predicate(row))

    @property
    def rows(self) -> list[EncodedRow]:
        """The encoded rows (do not mutate)."""
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> EncodedRow:
        return self._rows[index]


def has_labels(row: Mapping[str, Any]) -> bool:
    """True if the row has at least one labelled (response or EOS) token."""
    return any(label != IGNORE_INDEX for label in row["labels"])


def _warn_cut(
    cut: list[tuple[EncodedRow, int]], n_rows: int, n_dropped: int, max_length: int, name: str
) -> None:
    """One WARNING for a dataset's cut rows: how many, the longest, and how many were dropped.

    A cut row loses its end (and its EOS), so a long program is learnt without its ending:
    the count says whether ``dataset.max_length`` is too small for the data.
    """
    longest, length = max(cut, key=lambda pair: pair[1])
    dropped = f"; {n_dropped} of them kept no response token and were dropped" if n_dropped else ""
    logger.warning(
        "dataset.max_length %d: %d of %d %s were cut (longest %d tokens, task %s)%s",
        max_length, len(cut), n_rows, f"{name} rows" if name else "rows", length,
        longest["task_id"], dropped,
    )
