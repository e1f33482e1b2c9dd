"""Prompts that do not leave room for an answer: lowered budgets and counted failures."""

from __future__ import annotations

import logging

from weighted_mtp.config.schema import EvaluationConfig
from weighted_mtp.data import encode_prompts, train_bpe_tokenizer
from weighted_mtp.evaluation import GREEDY, problem_prompt
from weighted_mtp.evaluation.run import generate_completions
from tests.generation.generation_helpers import build_model

PROBLEMS = [
    {"name": "short", "description": "Print 1."},
    {"name": "medium", "description": "Print the number one, then stop. " * 3},
    {"name": "long", "description": "Read every word and print it again. " * 40},
]


def test_budgets_follow_the_context_and_hopeless_prompts_fail_unrun(caplog) -> None:
    tokenizer = train_bpe_tokenizer([p["description"] for p in PROBLEMS] * 3, vocab_size=300)
    lengths = {p["name"]: len(ids) for p, ids in
               zip(PROBLEMS, encode_prompts([(problem_prompt(p), "") for p in PROBLEMS], tokenizer))}
    context = lengths["medium"] + 20  # medium gets 20 new tokens, short all 32, long none
    assert lengths["short"] + 32 <= context < lengths["long"] + 16
    model = build_model(seed=0, scale=1.0, vocab_size=len(tokenizer), max_seq_len=context).eval()
    config = EvaluationConfig(n_samples=2, k=[1, 2], max_new_tokens=32, batch_size=4)
    with caplog.at_level(logging.WARNING):
        completions = generate_completions(model, tokenizer, PROBLEMS, config)
    assert [(c.problem, c.sample) for c in completions] == [
        ("short", GREEDY), ("medium", GREEDY), ("long", GREEDY),
        ("short", 0), ("short", 1), ("medium", 0), ("medium", 1), ("long", 0), ("long", 1)]
    by_problem = {c.problem: c for c in completions if c.sample == GREEDY}
    assert by_problem["long"].status == "prompt_too_long" and by_problem["long"].text == ""
    assert by_problem["short"].status is None and by_problem["medium"].status is None
    assert "2 of 3 prompts leave fewer than evaluation.max_new_tokens=32" in caplog.text
    again = generate_completions(model, tokenizer, PROBLEMS, config)
    assert [c.text for c in again] == [c.text for c in completions]  # seeded sampling
