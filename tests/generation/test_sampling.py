"""Sampling settings, seeds, and the errors bad requests get."""

from __future__ import annotations

import pytest
import torch
from generation_helpers import build_model, random_prompts

from weighted_mtp.generation import SamplingConfig, generate
from weighted_mtp.generation.sampling import filtered_probs


def test_filtered_probs_top_k_and_top_p_by_hand() -> None:
    logits = torch.log(torch.tensor([[0.1, 0.5, 0.15, 0.25]]))
    probs, ids = filtered_probs(logits, SamplingConfig(temperature=1.0, top_k=3))
    assert ids.tolist() == [[1, 3, 2, 0]]
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.25, 0.15, 0.0]]) / 0.9)
    # top_p 0.7: 0.5 (mass before 0) and 0.25 (mass before 0.5 < 0.7) stay; 0.15 does not.
    probs, _ = filtered_probs(logits, SamplingConfig(temperature=1.0, top_p=0.7))
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.25, 0.0, 0.0]]) / 0.75)
    # temperature 0.5 squares the ratios: 0.5² : 0.25² = 4 : 1.
    probs, _ = filtered_probs(logits, SamplingConfig(temperature=0.5, top_k=2))
    torch.testing.assert_close(probs[0, :2], torch.tensor([0.8, 0.2]))


def test_sampling_is_reproducible_with_a_seed_and_varies_without() -> None:
    model = build_model()
    prompts = random_prompts([5, 8])
    options = dict(max_new_tokens=30, temperature=1.0)
    first = generate(model, prompts, seed=1, **options)
    assert generate(model, prompts, seed=1, **options) == first
    assert generate(model, prompts, seed=2, **options) != first
    assert first != generate(model, prompts, **{**options, "temperature": 0.0})


def test_top_k_1_and_tiny_top_p_are_greedy() -> None:
    model = build_model()
    prompts = random_prompts([5, 8])
    greedy = generate(model, prompts, max_new_tokens=20)
    assert generate(model, prompts, max_new_tokens=20, temperature=1.5, top_k=1, seed=4) == greedy
    assert generate(model, prompts, max_new_tokens=20, temperature=1.5, top_p=1e-6) == greedy


def test_empty_prompt_list_gives_empty_result() -> None:
    assert generate(build_model(), [], max_new_tokens=5) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompts": [[1, 2], []]}, r"prompts\[1\] is empty"),
    ({"prompts": [[1] * 80], "max_new_tokens": 20}, r"prompts\[0\] has 80 tokens.*96.*20"),
    ({"temperature": -0.5}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_k": -1}, "top_k must be an int >= 0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be an int >= 1"),
    ({"prompts": [[1, 300]]}, r"prompts\[0\] holds ids outside \[0, 300\)"),
    ({"prompts": "hello"}, "prompts must be a list of token-id lists"),
    ({"speculative": True, "temperature": 0.7}, "speculative=True decodes greedily"),
    ({"stop_ids": [999]}, "stop_ids"),
    ({"seed": -1}, "seed must be"),
    ({"batch_size": 0}, "batch_size must be"),
])
def test_bad_requests_get_a_clear_error(kwargs: dict, message: str) -> None:
    request = {"prompts": [[1, 2, 3]], "max_new_tokens": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(build_model(), **request)


def test_speculative_needs_extra_heads_and_model_must_be_mtp() -> None:
    with pytest.raises(ValueError, match="n_future_tokens=1"):
        generate(build_model(n_future_tokens=1), [[1, 2]], max_new_tokens=3, speculative=True)
    with pytest.raises(TypeError, match="MetaLlamaMTPAdapter"):
        generate(torch.nn.Linear(2, 2), [[1, 2]], max_new_tokens=3)
