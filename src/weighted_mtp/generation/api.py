"""``generate``: token ids in, new token ids out, for the loaded MTP model.

Validates the request, sorts prompts by length into batches (less left padding), runs the
plain or speculative loop under ``torch.inference_mode`` and, under ``torchrun``, splits
the prompts over the ranks and gathers every completion (docs/GENERATION.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from weighted_mtp.generation.decode import GenerationStats, decode_plain, decode_speculative
from weighted_mtp.generation.sampling import SamplingConfig, row_generator
from weighted_mtp.models.transformer import MTPTransformer
from weighted_mtp.runtime import distributed
from weighted_mtp.training.progress import progress as progress_bar

logger = logging.getLogger(__name__)


def generate(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
             stop_ids: Iterable[int] = (), speculative: bool = False, seed: int = 0, *,
             batch_size: int = 16, progress: bool = False,
             stats: GenerationStats | None = None) -> list[list[int]]:
    """Continue each prompt; return the new tokens only.

    A row ends at a stop id (included in its output) or after ``max_new_tokens``. Prompt
    ``i`` samples from its own generator seeded by ``(seed, i)``, so the result does not
    depend on ``batch_size`` or the number of ranks.

    Args:
        model: A ``MetaLlamaMTPAdapter`` (or its ``MTPTransformer``). Not modified.
        prompts: Token ids per prompt, any lengths (BOS included if the model expects it).
        max_new_tokens: Limit of new tokens per prompt (>= 1).
        temperature: 0 = greedy; > 0 samples from softmax(logits / temperature).
        top_p: Nucleus sampling mass in (0, 1].
        top_k: Sample among the k most likely tokens (0 = all).
        stop_ids: Token ids that end a row (e.g. EOS).
        speculative: Self-speculative greedy decoding with the MTP heads (needs
            temperature 0 and n_future_tokens >= 2); same output as plain greedy.
        seed: Seed of the sampling generators (>= 0).
        batch_size: Prompts decoded together.
        progress: Show a progress bar over prompts (rank 0 only).
        stats: If given, work counters are added to it (e.g. ``stats.mean_accepted``).

    Returns:
        New token ids per prompt, in the order of ``prompts``; under ``torchrun`` every
        rank returns the full list.

    Raises:
        ValueError: A bad argument (the message names it).
        TypeError: ``model`` is not an MTP model.
    """
    transformer = _transformer_of(model)
    config = SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k)
    stop = _check_request(transformer, prompts, max_new_tokens, stop_ids, speculative, config,
                          seed, batch_size)
    rank, world = ((distributed.get_rank(), distributed.get_world_size())
                   if distributed.is_distributed() else (0, 1))
    own = list(range(rank, len(prompts), world))  # strided: every rank gets long and short
    local_stats = GenerationStats()
    results: dict[int, list[int]] = {}
    with torch.inference_mode(), progress_bar(len(own), desc="generate", unit="prompt",
                                              is_main=distributed.is_main_process(),
                                              enabled=None if progress else False) as bar:
        for batch in _batches(own, prompts, batch_size):
            rows = [prompts[i] for i in batch]
            if speculative:
                new = decode_speculative(transformer, rows, max_new_tokens, stop, local_stats)
            else:
                generators = [row_generator(seed, i) for i in batch]
                new = decode_plain(transformer, rows, max_new_tokens, config, stop, generators,
                                   local_stats)
            results.update(zip(batch, new))
            bar.update(len(batch))
    local_stats.new_tokens = sum(len(tokens) for tokens in results.values())
    results, local_stats = _gather(results, local_stats)
    if stats is not None:
        stats.add(local_stats)
    _log(local_stats, speculative)
    return [results[i] for i in range(len(prompts))]


def _transformer_of(model: nn.Module) -> MTPTransformer:
    transformer = getattr(model, "transformer", model)
    if not isinstance(transformer, MTPTransformer):
        raise TypeError(f"model must be a MetaLlamaMTPAdapter or MTPTransformer, got "
                        f"{type(model).__name__}")
    return transformer


def _check_request(transformer: MTPTransformer, prompts: Sequence[Sequence[int]],
                   max_new_tokens: int, stop_ids: Iterable[int], speculative: bool,
                   config: SamplingConfig, seed: int, batch_size: int) -> frozenset[int]:
    """Raise ValueError naming the first bad argument; return the stop ids as a set."""
    args = transformer.args
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be an int in [0, 2**31), got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if speculative and not config.greedy:
        raise ValueError(f"speculative=True decodes greedily; it needs temperature=0, got "
                         f"temperature={config.temperature}")
    if speculative and args.n_future_tokens < 2:
        raise ValueError("speculative=True needs extra heads to draft with, but the model has "
                         f"n_future_tokens={args.n_future_tokens}")
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise ValueError(f"prompts must be a list of token-id lists, got {type(prompts).__name__}")
    limit = args.max_seq_len - max_new_tokens
    for index, prompt in enumerate(prompts):
        _check_prompt(index, prompt, limit, args.vocab_size, max_new_tokens, args.max_seq_len)
    stop = frozenset(int(token) for token in stop_ids)
    if any(not 0 <= token < args.vocab_size for token in stop):
        raise ValueError(f"stop_ids {sorted(stop)} must lie in [0, {args.vocab_size})")
    return stop


def _check_prompt(index: int, prompt: Sequence[int], limit: int, vocab_size: int,
                  max_new_tokens: int, max_seq_len: int) -> None:
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence):
        raise ValueError(f"prompts[{index}] must be a list of token ids, got "
                         f"{type(prompt).__name__}")
    if len(prompt) == 0:
        raise ValueError(f"prompts[{index}] is empty; a prompt needs at least one token (BOS)")
    if len(prompt) > limit:
        raise ValueError(f"prompts[{index}] has {len(prompt)} tokens, more than max_seq_len "
                         f"({max_seq_len}) - max_new_tokens ({max_new_tokens}) = {limit}; "
                         "shorten the prompt or lower max_new_tokens")
    bad = [token for token in prompt
           if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size]
    if bad:
        raise ValueError(f"prompts[{index}] holds ids outside [0, {vocab_size}) or non-ints: "
                         f"{bad[:5]}")


def _batches(indices: list[int], prompts: Sequence[Sequence[int]], batch_size: int
             ) -> list[list[int]]:
    """Prompt indices by decreasing length, cut into batches (similar lengths pad less)."""
    ordered = sorted(indices, key=lambda i: -len(prompts[i]))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def _gather(results: dict[int, list[int]], stats: GenerationStats
            ) -> tuple[dict[int, list[int]], GenerationStats]:
    """Every rank's completions and counters (this rank's own without a process group)."""
    if not distributed.is_distributed():
        return results, stats
    merged: dict[int, list[int]] = {}
    total = GenerationStats()
    for rank_results, rank_stats in distributed.all_gather_objects((results, stats)):
        merged.update(rank_results)
        total.add(rank_stats)
    return merged, total


def _log(stats: GenerationStats, speculative: bool) -> None:
    """One DEBUG line per call: an evaluation calls this once per batch of prompts, and the
    caller logs the totals (GenerationStats)."""
    if speculative:
        logger.debug("generated %d tokens; speculative decoding accepted %.2f tokens per forward",
                    stats.new_tokens, stats.mean_accepted)
    else:
        logger.debug("generated %d tokens", stats.new_tokens)
