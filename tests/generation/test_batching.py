"""Mixed-length batches against one prompt at a time; finished rows; stop ids."""

from __future__ import annotations

import pytest
from generation_helpers import build_model, random_prompts

from weighted_mtp.generation import GenerationStats, generate

LENGTHS = [4, 17, 1, 9, 12, 2, 30]


@pytest.mark.parametrize("speculative", [False, True])
def test_mixed_length_batch_equals_one_by_one_greedy(speculative: bool) -> None:
    model = build_model()
    prompts = random_prompts(LENGTHS)
    one_by_one = [generate(model, [p], max_new_tokens=25, speculative=speculative)[0]
                  for p in prompts]
    batched = generate(model, prompts, max_new_tokens=25, speculative=speculative, batch_size=16)
    assert batched == one_by_one
    assert all(len(tokens) == 25 for tokens in batched)


def test_mixed_length_batch_equals_one_by_one_sampled() -> None:
    """Each prompt's generator is seeded by (seed, its index): batching does not change it."""
    model = build_model()
    prompts = random_prompts(LENGTHS)
    options = dict(max_new_tokens=20, temperature=0.9, top_p=0.95, top_k=40, seed=7)
    sequential = generate(model, prompts, batch_size=1, **options)
    assert generate(model, prompts, batch_size=16, **options) == sequential
    assert generate(model, prompts, batch_size=3, **options) == sequential


def test_rows_stop_at_stop_ids_and_the_others_continue() -> None:
    model = build_model()
    prompts = random_prompts(LENGTHS)
    free = generate(model, prompts, max_new_tokens=25)
    stop = free[1][5]  # row 1 stops at its 6th token (others may too, where it occurs)
    stopped = generate(model, prompts, max_new_tokens=25, stop_ids=[stop])
    for full, cut in zip(free, stopped):
        expected = full[:full.index(stop) + 1] if stop in full else full
        assert cut == expected
    assert len(stopped[1]) <= 6
    assert stopped == [generate(model, [p], max_new_tokens=25, stop_ids=[stop])[0]
                       for p in prompts]


def test_finished_rows_stop_costing_work() -> None:
    """Forwards after the prompt = the longest row's new tokens - 1, not rows × that."""
    model = build_model()
    prompts = random_prompts(LENGTHS)
    free = generate(model, prompts, max_new_tokens=25)
    stop = free[1][2]
    stats = GenerationStats()
    stopped = generate(model, prompts, max_new_tokens=25, stop_ids=[stop], stats=stats)
    assert stats.prefills == 1
    assert stats.decode_forwards == max(len(tokens) for tokens in stopped) - 1
    assert stats.new_tokens == sum(len(tokens) for tokens in stopped)
