"""Hugging Face export and import: head 0 as a ``LlamaForCausalLM`` folder that transformers
loads (same logits, same greedy tokens), the other heads beside it, and back bit for bit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from weighted_mtp.cli import cli
from weighted_mtp.config import PolicyModelConfig, validate_block
from weighted_mtp.data import load_tokenizer, train_bpe_tokenizer
from weighted_mtp.generation import generate
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.hf_interop import (
    SIDE_JSON, SIDE_WEIGHTS, export_hf, import_hf, plan_shards,
)
from weighted_mtp.models.hf_llama import args_from_hf_config
from weighted_mtp.models.micro import MICRO_DEFAULTS
from weighted_mtp.models.policy_dir import load_or_create_policy
from weighted_mtp.models.transformer import init_weights

# The micro model's shape (GQA 4 → 2, 4 heads) and a tiny multi-query model (4 → 1, 3 heads)
# with RoPE base and norm eps other than the defaults.
SHAPES = {
    "micro": {**MICRO_DEFAULTS},
    "tiny-mqa": {"dim": 32, "n_layers": 5, "n_heads": 4, "n_kv_heads": 1, "n_future_tokens": 3,
                 "max_seq_len": 64, "multiple_of": 16, "rope_theta": 500000.0, "norm_eps": 1e-6},
}
VALUE_HEADS = {"micro": "block", "tiny-mqa": "mlp"}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_bpe_tokenizer(["def f(x):\n    return x + 1\n", "print(input())\n"] * 20,
                               vocab_size=300)


def write_model(folder: Path, shape: str, tokenizer: Any, seed: int = 0) -> MetaLlamaMTPAdapter:
    """A seeded model directory with its tokenizer; weights × 2 so greedy choices have
    clear margins (top-2 gap > 1e-3 here) while fp32 sums stay within 1e-5 of HF's."""
    args = ModelArgs(**SHAPES[shape], vocab_size=len(tokenizer))
    model = MetaLlamaMTPAdapter(args, value_head=VALUE_HEADS[shape])
    generator = torch.Generator().manual_seed(seed)
    init_weights(model, n_path_blocks=args.n_layer_blocks, generator=generator)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(2.0)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    model.model_name = f"{shape}-test"
    model.save_pretrained(folder)
    return model.eval()


def random_ids(vocab: int, shape: tuple[int, int], seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", SHAPES)
def test_export_loads_in_transformers_with_the_same_logits_and_greedy_tokens(
        shape: str, tokenizer: Any, tmp_path: Path) -> None:
    model = write_model(tmp_path / "model", shape, tokenizer)
    export_hf(tmp_path / "model", tmp_path / "hf")

    hf_model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    hf_tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    assert isinstance(hf_model, LlamaForCausalLM) and hf_model.dtype == torch.float32
    config, args = hf_model.config, model.args
    assert (config.num_hidden_layers, config.num_key_value_heads, config.intermediate_size,
            config.rms_norm_eps) == (args.n_layer_blocks, args.kv_heads, args.ffn_hidden_dim,
                                     args.norm_eps)
    assert hf_tokenizer.encode("def f(x):", add_special_tokens=False) == \
        tokenizer.encode("def f(x):", add_special_tokens=False)
    assert config.eos_token_id == tokenizer.eos_token_id

    ids = random_ids(args.vocab_size, (2, 21))
    with torch.no_grad():
        ours = model.head_logits(model.trunk_forward(ids), 0)
        torch.testing.assert_close(hf_model(ids).logits, ours, rtol=0, atol=1e-5)
    for prompt in random_ids(args.vocab_size, (3, 6), seed=4).tolist():
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                    do_sample=False, eos_token_id=None, pad_token_id=0)
        assert generate(model, [prompt], max_new_tokens=24) == [out[0, len(prompt):].tolist()]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_side_file_keeps_every_other_head_and_the_value_head(
        shape: str, tokenizer: Any, tmp_path: Path) -> None:
    model = write_model(tmp_path / "model", shape, tokenizer)
    export_hf(tmp_path / "model", tmp_path / "hf")

    side = json.loads((tmp_path / "hf" / SIDE_JSON).read_text())
    assert (side["n_future_tokens"], side["value_head"], side["model_name"]) == \
        (model.n_future_tokens, VALUE_HEADS[shape], f"{shape}-test")
    assert ModelArgs.from_dict(side["params"]) == model.args
    # What mtp_heads.json says: extra_heads.{k-1} in place of the last layer is head k.
    heads = load_file(str(tmp_path / "hf" / SIDE_WEIGHTS))
    hf_model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    last = hf_model.model.layers[-1]
    ids = random_ids(model.args.vocab_size, (2, 13))
    with torch.no_grad():
        z = model.trunk_forward(ids)
        for k in range(1, model.n_future_tokens):
            prefix = f"extra_heads.{k - 1}."
            last.load_state_dict({key[len(prefix):]: value for key, value in heads.items()
                                  if key.startswith(prefix)}, strict=True)
            torch.testing.assert_close(hf_model(ids).logits, model.head_logits(z, k),
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_import_of_an_export_is_bit_exact(shape: str, tokenizer: Any, tmp_path: Path) -> None:
    model = write_model(tmp_path / "model", shape, tokenizer)
    export_hf(tmp_path / "model", tmp_path / "hf", max_shard_bytes=200_000)  # several shards
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()

    import_hf(tmp_path / "hf", tmp_path / "back")

    back = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "back")
    expected, found = model.state_dict(), back.state_dict()
    assert found.keys() == expected.keys()
    assert all(torch.equal(found[key], expected[key]) for key in expected)
    assert back.args == model.args and back.model_name == f"{shape}-test"
    assert load_tokenizer(tmp_path / "back").get_vocab() == tokenizer.get_vocab()


def save_hf_llama(folder: Path, tokenizer: Any, **config: Any) -> LlamaForCausalLM:
    """A tiny LlamaForCausalLM as transformers saves it: GQA 4 → 2, an intermediate size
    Meta's formula does not give by default (80 for dim 32), RoPE base 5e5."""
    settings = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=80,
                    num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500000.0,
                    tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(3)
    model = LlamaForCausalLM(LlamaConfig(**{**settings, **config})).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.1)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return model


def test_import_of_a_hugging_face_llama_then_export_gives_it_back(
        tokenizer: Any, tmp_path: Path) -> None:
    hf_model = save_hf_llama(tmp_path / "llama", tokenizer)

    import_hf(tmp_path / "llama", tmp_path / "mtp", n_future_tokens=4)

    model = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "mtp")
    assert model.args.n_layers == 6 and model.args.ffn_hidden_dim == 80
    assert model.value_head.kind == "linear" and len(load_tokenizer(tmp_path / "mtp")) == len(tokenizer)
    ids = random_ids(len(tokenizer), (2, 15))
    with torch.no_grad():
        expected = hf_model(ids).logits
        logits = model(ids).logits  # (B, S, 4, V)
    torch.testing.assert_close(logits[:, :, 0], expected, rtol=0, atol=1e-5)
    for k in range(1, 4):  # every extra head starts as a copy of the last block
        assert torch.equal(logits[:, :, k], logits[:, :, 0])

    export_hf(tmp_path / "mtp", tmp_path / "hf")
    original = load_file(str(tmp_path / "llama" / "model.safetensors"))
    exported = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[key], original[key]) for key in original)


def test_tied_embeddings_become_the_output_projection(tokenizer: Any, tmp_path: Path) -> None:
    hf_model = save_hf_llama(tmp_path / "llama", tokenizer, tie_word_embeddings=True)
    import_hf(tmp_path / "llama", tmp_path / "mtp", n_future_tokens=2, value_head="none")
    model = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "mtp")
    assert torch.equal(model.transformer.output.weight, hf_model.model.embed_tokens.weight)
    assert json.loads((tmp_path / "mtp" / "metadata.json").read_text())["value_head"] is None


def test_an_imported_folder_is_a_policy_path(tokenizer: Any, tmp_path: Path) -> None:
    save_hf_llama(tmp_path / "llama", tokenizer)
    import_hf(tmp_path / "llama", tmp_path / "mtp", n_future_tokens=3, value_head="block")
    policy = validate_block(PolicyModelConfig, {"name": "llama", "path": str(tmp_path / "mtp"),
                                                "value_head": "block"}, "models.policy")
    model = load_or_create_policy(policy, load_tokenizer(tmp_path / "mtp"))
    assert model.n_future_tokens == 3 and model.value_head.kind == "block"


def test_shards_hold_at_most_the_limit_unless_one_tensor_is_larger() -> None:
    assert plan_shards({"a": 4, "b": 4, "c": 9, "d": 1}, 8) == [["a", "b"], ["c"], ["d"]]
    assert plan_shards({"a": 1}, 8) == [["a"]]


def test_errors_name_the_file_and_what_is_wrong(tokenizer: Any, tmp_path: Path) -> None:
    llama = tmp_path / "llama"
    save_hf_llama(llama, tokenizer)
    config = json.loads((llama / "config.json").read_text())

    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(tmp_path))}: no config.json"):
        import_hf(tmp_path, tmp_path / "a", n_future_tokens=2)
    with pytest.raises(ValueError, match=r"has no mtp_heads.json: say how many heads"):
        import_hf(llama, tmp_path / "a")
    (llama / "config.json").write_text(json.dumps({**config, "intermediate_size": 96}))
    with pytest.raises(ValueError, match=r"(?s)llama does not match the model.*shape mismatches"
                                         r".*model.layers.0.mlp.down_proj.weight: expected "
                                         r"\(32, 96\), found \(32, 80\).*config.json"):
        import_hf(llama, tmp_path / "a", n_future_tokens=2)
    (llama / "config.json").write_text(json.dumps({**config, "rope_scaling": {
        "rope_type": "linear", "factor": 2.0}}))
    with pytest.raises(ValueError, match=r"config.json: not implemented by the MTP model: rope "
                                         r"type 'linear'"):
        import_hf(llama, tmp_path / "a", n_future_tokens=2)
    (llama / "config.json").write_text(json.dumps({**config, "model_type": "mistral",
                                                   "architectures": ["MistralForCausalLM"]}))
    with pytest.raises(ValueError, match=r"config.json: model_type 'mistral', architectures "
                                         r"\['MistralForCausalLM'\]: only LlamaForCausalLM"):
        import_hf(llama, tmp_path / "a", n_future_tokens=2)
    (llama / "config.json").write_text(json.dumps(config))
    (llama / "model.safetensors").rename(llama / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"no model.safetensors .*found pytorch_model.bin"):
        import_hf(llama, tmp_path / "a", n_future_tokens=2)
    assert not (tmp_path / "a").exists()


def test_a_side_file_of_another_head_count_or_a_used_folder_is_refused(
        tokenizer: Any, tmp_path: Path) -> None:
    write_model(tmp_path / "model", "tiny-mqa", tokenizer)
    export_hf(tmp_path / "model", tmp_path / "hf")
    with pytest.raises(ValueError, match=r"mtp_heads.json holds the heads of an n_future_tokens=3 "
                                         r"model but 4 was asked"):
        import_hf(tmp_path / "hf", tmp_path / "back", n_future_tokens=4)
    with pytest.raises(ValueError, match=r"model: exists and is not an empty folder; import-hf"):
        import_hf(tmp_path / "hf", tmp_path / "model")
    with pytest.raises(ValueError, match=r"hf: exists and is not an empty folder; export-hf"):
        export_hf(tmp_path / "model", tmp_path / "hf")


def test_cli_commands_and_the_value_head_default(tokenizer: Any, tmp_path: Path,
                                                 project_root: Path) -> None:
    write_model(tmp_path / "model", "tiny-mqa", tokenizer)
    runner = CliRunner()
    exported = runner.invoke(cli, ["wmtp", "export-hf", str(tmp_path / "model"), str(tmp_path / "hf")])
    assert exported.exit_code == 0, exported.output
    (tmp_path / "hf" / SIDE_JSON).unlink()  # a plain LLaMA folder: new heads, default value head
    (tmp_path / "hf" / SIDE_WEIGHTS).unlink()
    imported = runner.invoke(cli, ["wmtp", "import-hf", str(tmp_path / "hf"), str(tmp_path / "back"),
                                   "--n-future-tokens", "2"])
    assert imported.exit_code == 0, imported.output
    metadata = json.loads((tmp_path / "back" / "metadata.json").read_text())
    base = yaml.safe_load((project_root / "conf/base/parameters.yml").read_text())
    assert metadata["value_head"] == base["models"]["policy"]["value_head"]
    assert metadata["params"]["n_future_tokens"] == 2
    failed = runner.invoke(cli, ["wmtp", "import-hf", str(tmp_path / "model"), str(tmp_path / "x")])
    assert failed.exit_code == 1 and "model: no config.json" in failed.output


@pytest.mark.parametrize(("dim", "intermediate", "ffn"), [
    (4096, 11008, {"multiple_of": 256, "ffn_dim_multiplier": None}),  # LLaMA 7B: Meta's own numbers
    (32, 96, {"multiple_of": 96, "ffn_dim_multiplier": None}),
    (32, 80, {"multiple_of": 80, "ffn_dim_multiplier": 80 / 85}),     # below int(8 * 32 / 3) = 85
])
def test_the_intermediate_size_maps_to_meta_ffn_fields(dim: int, intermediate: int, ffn: dict) -> None:
    config = LlamaConfig(vocab_size=10, hidden_size=dim, intermediate_size=intermediate,
                         num_hidden_layers=2, num_attention_heads=4)
    args = args_from_hf_config(config, n_future_tokens=4, source="config.json")
    assert args.ffn_hidden_dim == intermediate and args.n_layers == 5
    assert {"multiple_of": args.multiple_of, "ffn_dim_multiplier": args.ffn_dim_multiplier} == ffn
