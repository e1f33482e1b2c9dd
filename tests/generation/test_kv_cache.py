"""The cached forward against full recomputation by the training forward."""

from __future__ import annotations

import torch
from generation_helpers import build_model, greedy_by_recompute, random_prompts

from weighted_mtp.generation import forward, generate
from weighted_mtp.generation.decode import left_pad
from weighted_mtp.generation.state import DecodeState


def test_cached_logits_match_full_recompute_to_1e5() -> None:
    # Weights × 2: logits up to ~2.5, so fp32 summation-order noise stays near 1e-6.
    model = build_model(scale=2.0)
    prompt = random_prompts([9])[0]
    tokens, recomputed = greedy_by_recompute(model, prompt, 24)
    transformer = model.transformer
    state = DecodeState(transformer, 1, 9 + 24, n_heads=1)
    cached = []
    with torch.no_grad():
        feed = torch.tensor([prompt])
        for step in range(24):
            real = torch.ones_like(feed, dtype=torch.bool)
            block = state.prepare(real)
            z = forward.trunk(transformer, feed, state, block)
            logits = forward.project(transformer, forward.head(transformer, z, 0, state, block))
            state.commit(real)
            cached.append(logits[0, -1])
            feed = torch.tensor([[tokens[step]]])
    for step, (ours, full) in enumerate(zip(cached, recomputed)):
        torch.testing.assert_close(ours, full, rtol=0, atol=1e-5, msg=f"step {step}")


def test_left_padded_rows_match_their_unpadded_logits() -> None:
    """Per-row positions and the padding mask make a padded row compute what it would alone."""
    model = build_model(scale=2.0)
    transformer = model.transformer
    prompts = random_prompts([3, 11, 7])
    tokens, real = left_pad(prompts, torch.device("cpu"))
    state = DecodeState(transformer, 3, tokens.shape[1], n_heads=1)
    with torch.no_grad():
        block = state.prepare(real)
        z = forward.trunk(transformer, tokens, state, block)
        logits = forward.project(transformer, forward.head(transformer, z, 0, state, block))
        for row, prompt in enumerate(prompts):
            alone = model.head_logits(model.trunk_forward(torch.tensor([prompt])), 0)[0]
            torch.testing.assert_close(logits[row, -len(prompt):], alone, rtol=0, atol=1e-5)


def test_generate_equals_greedy_recomputation() -> None:
    model = build_model(seed=3)
    prompts = random_prompts([5, 1, 14], seed=4)
    expected = [greedy_by_recompute(model, prompt, 30)[0] for prompt in prompts]
    assert generate(model, prompts, max_new_tokens=30) == expected


def test_generation_leaves_the_training_forward_and_the_model_unchanged() -> None:
    model = build_model()
    ids = torch.tensor(random_prompts([12, 12]))
    before = model(ids).logits.detach().clone()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    generate(model, ids.tolist(), max_new_tokens=8, speculative=True)
    assert torch.equal(model(ids).logits, before)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
