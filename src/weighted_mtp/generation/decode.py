"""Decoding loops of one batch: plain (one forward per new token) and self-speculative.

Plain decoding is gpt-fast's ``prefill`` + ``decode_one_token``: the whole left-padded
prompt in one forward, then one cached forward per new token. Self-speculative decoding
(Stern et al. 2018, blockwise parallel decoding; Gloeckle et al. 2024, §inference) uses the
MTP heads: one forward gives head 0's next token plus heads 1..n-1's guesses of the tokens
after it; the next forward feeds all n of them, head 0 checks each guess against its own
greedy choice, and the longest agreeing prefix is kept plus head 0's token after it. The
output is plain greedy decoding's, token for token. See docs/GENERATION.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from weighted_mtp.generation import forward
from weighted_mtp.generation.sampling import SamplingConfig, sample
from weighted_mtp.generation.state import BlockInputs, DecodeState
from weighted_mtp.models.transformer import MTPTransformer


@dataclass
class GenerationStats:
    """Work counters, accumulated over every batch of a ``generate`` call.

    Attributes:
        new_tokens: Tokens returned.
        prefills: Prompt forwards (one per batch).
        decode_forwards: Forwards after the prompt's (one per step of the batch).
        decoded: Tokens those forwards produced for the batch (per step: 1 when plain;
            accepted drafts + 1 when speculative).
    """

    new_tokens: int = 0
    prefills: int = 0
    decode_forwards: int = 0
    decoded: int = 0

    @property
    def mean_accepted(self) -> float:
        """Mean tokens produced per decoding forward (1.0 for plain decoding, up to n)."""
        return self.decoded / self.decode_forwards if self.decode_forwards else 0.0

    def add(self, other: "GenerationStats") -> None:
        """Add another call's counters (e.g. another rank's)."""
        self.new_tokens += other.new_tokens
        self.prefills += other.prefills
        self.decode_forwards += other.decode_forwards
        self.decoded += other.decoded


def left_pad(prompts: Sequence[Sequence[int]], device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts so every row's last prompt token sits in the same slot.

    Returns:
        (token ids ``(B, P)`` long with 0 on padding, real-token mask ``(B, P)`` bool).
    """
    width = max(len(p) for p in prompts)
    tokens = torch.zeros(len(prompts), width, dtype=torch.long)
    real = torch.zeros(len(prompts), width, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        tokens[row, width - len(prompt):] = torch.as_tensor(list(prompt), dtype=torch.long)
        real[row, width - len(prompt):] = True
    return tokens.to(device), real.to(device)


def _emit(out: list[int], tokens: Sequence[int], stop_ids: frozenset[int],
          max_new_tokens: int) -> bool:
    """Append tokens until a stop id (kept) or the length limit; True when the row is done."""
    for token in tokens:
        out.append(token)
        if token in stop_ids or len(out) >= max_new_tokens:
            return True
    return False


class _Rows:
    """Which of the caller's rows are still decoding, and their outputs."""

    def __init__(self, n_rows: int, generators: Sequence[torch.Generator]) -> None:
        self.ids = list(range(n_rows))  # caller's row of each batch row
        self.outputs: list[list[int]] = [[] for _ in range(n_rows)]
        self.generators = list(generators)

    def drop(self, finished: Sequence[bool], state: DecodeState,
             carried: torch.Tensor) -> torch.Tensor | None:
        """Remove finished rows from the batch (their cache rows too); None when all are.

        Args:
            finished: Per current batch row.
            state: Decoding state to shrink.
            carried: Per-row tensor the loop carries to the next step ``(B, …)``.

        Returns:
            ``carried`` for the remaining rows.
        """
        if not any(finished):
            return carried
        keep = [i for i, done in enumerate(finished) if not done]
        if not keep:
            return None
        index = torch.tensor(keep, device=carried.device)
        state.keep_rows(index)
        self.ids = [self.ids[i] for i in keep]
        if self.generators:
            self.generators = [self.generators[i] for i in keep]
        return carried.index_select(0, index)


def decode_plain(transformer: MTPTransformer, prompts: Sequence[Sequence[int]],
                 max_new_tokens: int, config: SamplingConfig, stop_ids: frozenset[int],
                 generators: Sequence[torch.Generator], stats: GenerationStats
                 ) -> list[list[int]]:
    """One forward per new token with head 0 (greedy or sampled).

    Args:
        transformer: The model.
        prompts: Token ids per row (validated by the caller).
        max_new_tokens: Limit per row.
        config: Sampling settings.
        stop_ids: A row ends after emitting one of these (kept in its output).
        generators: One per row (only read when sampling).
        stats: Counters to add to.

    Returns:
        New tokens per row.
    """
    device = transformer.tok_embeddings.weight.device
    tokens, real = left_pad(prompts, device)
    state = DecodeState(transformer, len(prompts), tokens.shape[1] + max_new_tokens, n_heads=1)
    rows = _Rows(len(prompts), generators)
    block = state.prepare(real)
    z = forward.trunk(transformer, tokens, state, block)
    logits = forward.project(transformer, forward.head(transformer, z, 0, state, block)[:, -1])
    state.commit(real)
    stats.prefills += 1
    while True:
        next_tokens = sample(logits, config, rows.generators)  # (B,)
        finished = [_emit(rows.outputs[row], [token], stop_ids, max_new_tokens)
                    for row, token in zip(rows.ids, next_tokens.tolist())]
        next_tokens = rows.drop(finished, state, next_tokens)
        if next_tokens is None:
            return rows.outputs
        step = torch.ones(len(rows.ids), 1, dtype=torch.bool, device=device)
        block = state.prepare(step)
        z = forward.trunk(transformer, next_tokens[:, None], state, block)
        logits = forward.project(transformer, forward.head(transformer, z, 0, state, block))[:, -1]
        state.commit(step)
        stats.decode_forwards += 1
        stats.decoded += 1


def _draft(transformer: MTPTransformer, z: torch.Tensor, state: DecodeState,
           block: BlockInputs) -> torch.Tensor:
    """Heads 1..n-1 on z (filling their caches); their greedy guesses at the last position.

    Returns:
        ``(B, n-1)``: head k's guess of the token k positions after head 0's.
    """
    n_heads = transformer.args.n_future_tokens
    hidden = [forward.head(transformer, z, k, state, block)[:, -1] for k in range(1, n_heads)]
    return forward.project(transformer, torch.stack(hidden, dim=1)).argmax(-1)  # (B, n-1)


def decode_speculative(transformer: MTPTransformer, prompts: Sequence[Sequence[int]],
                       max_new_tokens: int, stop_ids: frozenset[int], stats: GenerationStats
                       ) -> list[list[int]]:
    """Greedy decoding with heads 1..n-1 drafting and head 0 verifying.

    In a batch all rows keep the same number of tokens per step, the smallest agreeing
    prefix among the active rows, so the rows stay slot-aligned; a row whose drafts agreed
    further recomputes them next step (same tokens: they were head 0's own choices). A
    single prompt keeps its full agreeing prefix.

    Args:
        transformer: The model (n_future_tokens >= 2).
        prompts: Token ids per row (validated by the caller).
        max_new_tokens: Limit per row.
        stop_ids: A row ends after emitting one of these (kept in its output).
        stats: Counters to add to; ``stats.mean_accepted`` is the speed-up's source.

    Returns:
        New tokens per row, identical to greedy ``decode_plain``.
    """
    device = transformer.tok_embeddings.weight.device
    n_heads = transformer.args.n_future_tokens
    tokens, real = left_pad(prompts, device)
    capacity = tokens.shape[1] + max_new_tokens + n_heads
    state = DecodeState(transformer, len(prompts), capacity, n_heads=n_heads)
    rows = _Rows(len(prompts), ())
    block = state.prepare(real)
    z = forward.trunk(transformer, tokens, state, block)
    first = forward.project(transformer, forward.head(transformer, z, 0, state, block)[:, -1])
    pending = torch.cat([first.argmax(-1, keepdim=True), _draft(transformer, z, state, block)],
                        dim=1)  # (B, n): head 0's token, then the drafts
    state.commit(real)
    stats.prefills += 1
    emitted = [[token] for token in pending[:, 0].tolist()]
    while True:
        finished = [_emit(rows.outputs[row], new, stop_ids, max_new_tokens)
                    for row, new in zip(rows.ids, emitted)]
        pending = rows.drop(finished, state, pending)
        if pending is None:
            return rows.outputs
        step = torch.ones(len(rows.ids), n_heads, dtype=torch.bool, device=device)
        block = state.prepare(step)
        z = forward.trunk(transformer, pending, state, block)  # (B, n, D)
        checked = forward.project(transformer, forward.head(transformer, z, 0, state, block))
        greedy = checked.argmax(-1)  # (B, n): head 0's choice after each fed token
        agreeing = (greedy[:, :-1] == pending[:, 1:]).long().cumprod(1).sum(1)  # (B,)
        accepted = int(agreeing.min())
        kept = block.first(accepted + 1)
        drafts = _draft(transformer, z[:, :accepted + 1], state, kept)
        state.commit(step[:, :accepted + 1])
        new = torch.cat([pending[:, 1:accepted + 1], greedy[:, accepted:accepted + 1]], dim=1)
        emitted = new.tolist()
        pending = torch.cat([greedy[:, accepted:accepted + 1], drafts], dim=1)
        stats.decode_forwards += 1
        stats.decoded += accepted + 1
