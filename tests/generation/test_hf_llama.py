"""Head 0 as a Hugging Face ``LlamaForCausalLM``: same logits, same greedy tokens."""

from __future__ import annotations

import torch
from generation_helpers import build_model, random_prompts

from weighted_mtp.generation import generate
from weighted_mtp.models.hf_llama import halves_to_interleaved, interleaved_to_halves, to_hf_llama


def test_rope_permutation_round_trips() -> None:
    weight = torch.randn(8 * 16, 64)
    assert torch.equal(halves_to_interleaved(interleaved_to_halves(weight, 8), 8), weight)


def test_hf_llama_logits_equal_head_0() -> None:
    model = build_model(scale=2.0)
    hf_model = to_hf_llama(model)
    ids = torch.tensor(random_prompts([20, 20], seed=2))
    with torch.no_grad():
        ours = model.head_logits(model.trunk_forward(ids), 0)
        theirs = hf_model(ids).logits
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_greedy_tokens_equal_hugging_face_generate() -> None:
    model = build_model(seed=1)
    hf_model = to_hf_llama(model)
    for prompt in random_prompts([1, 7, 15], seed=6):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40,
                                    do_sample=False, eos_token_id=None, pad_token_id=0)
        expected = out[0, len(prompt):].tolist()
        assert generate(model, [prompt], max_new_tokens=40) == [expected]
        assert generate(model, [prompt], max_new_tokens=40, speculative=True) == [expected]
