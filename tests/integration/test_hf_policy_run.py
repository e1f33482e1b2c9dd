"""A Hugging Face LLaMA imported with `import-hf` trains as models.policy.path (baseline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from project_runs import make_scratch_project, run_project
from weighted_mtp.data import load_tokenizer, train_bpe_tokenizer
from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.models.hf_interop import import_hf

pytestmark = pytest.mark.slow


def test_an_imported_llama_is_the_policy_of_a_baseline_run(tmp_path: Path) -> None:
    workdir = make_scratch_project(tmp_path / "project", n_problems=20)
    raw = (workdir / "data/01_raw/code_problems.jsonl").read_text().splitlines()
    problems = [json.loads(line) for line in raw]  # a tokenizer that fits the data, as a real model's
    tokenizer = train_bpe_tokenizer([p["description"] for p in problems]
                                    + [code for p in problems for code in p["solutions"]["solution"]],
                                    vocab_size=800)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(tmp_path / "llama"))
    tokenizer.save_pretrained(str(tmp_path / "llama"))
    model_dir = workdir / "data/06_models/hf-llama-mtp"
    import_hf(tmp_path / "llama", model_dir, n_future_tokens=2)
    before = MetaLlamaMTPAdapter.from_pretrained(model_dir).transformer.output.weight

    run_project(workdir, env="baseline", pipeline_names=["data_processing", "stage1", "stage2"],
                to_nodes=["save_best"],
                extra_params={"models": {"policy": {"path": str(model_dir), "create_micro": False}},
                              "training": {"stage2": {"n_epochs": 0.2}}})

    best = MetaLlamaMTPAdapter.from_pretrained(workdir / "data/07_model_output/best_model/baseline")
    assert best.args == MetaLlamaMTPAdapter.from_pretrained(model_dir).args
    assert not torch.equal(best.transformer.output.weight, before)  # stage 2 trained it
    used = load_tokenizer(workdir / "data/05_model_input/tokenizer")  # the model's own tokenizer
    assert used.get_vocab() == tokenizer.get_vocab()
