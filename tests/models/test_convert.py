"""Converter: a synthetic Meta consolidated.pth → model directory → identical logits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_helpers import build_tiny
from weighted_mtp.data import load_tokenizer
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.checkpoint_io import METADATA_FILE, WEIGHTS_FILE
from weighted_mtp.models.convert import convert_meta_checkpoint, main


def _write_meta_release(model: MetaLlamaMTPAdapter, folder: Path,
                        dtype: torch.dtype = torch.float32) -> tuple[Path, Path]:
    """consolidated.pth and params.json the way Meta ships them (vocab -1, extra keys)."""
    folder.mkdir()
    state = {k: v.to(dtype) for k, v in model.transformer.state_dict().items()}
    state["rope.freqs"] = torch.rand(model.args.head_dim // 2)
    torch.save(state, folder / "consolidated.pth")
    params = {**model.args.to_meta_params(), "vocab_size": -1, "max_batch_size": 32}
    (folder / "params.json").write_text(json.dumps(params))
    return folder / "consolidated.pth", folder / "params.json"


def test_cli_conversion_gives_identical_logits(tiny_model: MetaLlamaMTPAdapter,
                                               tiny_ids: torch.Tensor, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    consolidated, params = _write_meta_release(tiny_model, tmp_path / "7B_1T_4")
    tokenizer = tmp_path / "hf_tok"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    status = main(["--consolidated", str(consolidated), "--params", str(params),
                   "--out", str(tmp_path / "out"), "--tokenizer", str(tokenizer)])
    assert status == 0
    keys = set(load_file(str(tmp_path / "out" / WEIGHTS_FILE)))
    assert "rope.freqs" not in keys and not any(k.startswith("value_head") for k in keys)
    metadata = json.loads((tmp_path / "out" / METADATA_FILE).read_text())
    assert metadata["model_name"] == "7B_1T_4" and metadata["params"]["vocab_size"] == 61
    assert (tmp_path / "out" / "tokenizer" / "tokenizer.json").is_file()
    with caplog.at_level(logging.INFO, logger="weighted_mtp.models"):
        loaded = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "out")
    assert "value head (linear) initialised fresh" in caplog.text
    with torch.no_grad():
        assert torch.equal(loaded(tiny_ids).logits, tiny_model(tiny_ids).logits)


def test_bf16_release_keeps_its_dtype(tiny_model: MetaLlamaMTPAdapter, tmp_path: Path) -> None:
    consolidated, params = _write_meta_release(tiny_model, tmp_path / "rel", torch.bfloat16)
    out = convert_meta_checkpoint(consolidated, params, tmp_path / "out", model_name="x")
    assert json.loads((out / METADATA_FILE).read_text())["dtype"] == "bfloat16"
    loaded = MetaLlamaMTPAdapter.from_pretrained(out)  # default float32
    expected = tiny_model.transformer.output.weight.to(torch.bfloat16).float()
    assert torch.equal(loaded.transformer.output.weight, expected)


def test_params_that_do_not_fit_the_weights_are_refused(tiny_model: MetaLlamaMTPAdapter,
                                                        tmp_path: Path) -> None:
    consolidated, params = _write_meta_release(tiny_model, tmp_path / "rel")
    params.write_text(json.dumps({**tiny_model.args.to_meta_params(), "n_future_tokens": 2}))
    with pytest.raises(ValueError, match=r"(?s)consolidated.pth does not match.*missing keys \(9\)"
                                         r".*unexpected keys \(9\): extra_heads.1"):
        convert_meta_checkpoint(consolidated, params, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["--consolidated", str(tmp_path / "none.pth"), "--params", str(params),
                 "--out", str(tmp_path / "out")]) == 1


def test_a_params_json_with_scaled_rope_is_refused(tiny_model: MetaLlamaMTPAdapter,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    consolidated, params = _write_meta_release(tiny_model, tmp_path / "rel")
    params.write_text(json.dumps({**tiny_model.args.to_meta_params(), "use_scaled_rope": True}))
    with pytest.raises(ValueError, match=rf"{params}: use_scaled_rope: True is not implemented"):
        convert_meta_checkpoint(consolidated, params, tmp_path / "out")
    with caplog.at_level(logging.ERROR):
        assert main(["--consolidated", str(consolidated), "--params", str(params),
                     "--out", str(tmp_path / "out")]) == 1
    assert "use_scaled_rope" in caplog.text and not (tmp_path / "out").exists()


def test_meta_tokenizer_model_is_converted_into_the_model_directory(
        tiny_args: ModelArgs, llama_sentencepiece: Path, tmp_path: Path) -> None:
    model = build_tiny(tiny_args.replace(vocab_size=320))  # the tokenizer's 320 pieces
    consolidated, params = _write_meta_release(model, tmp_path / "7B_1T_4")
    status = main(["--consolidated", str(consolidated), "--params", str(params),
                   "--out", str(tmp_path / "out"), "--tokenizer", str(llama_sentencepiece)])
    assert status == 0
    tokenizer = load_tokenizer(tmp_path / "out")
    assert len(tokenizer) == 320 and tokenizer.eos_token_id == 2
    assert tokenizer.decode(tokenizer.encode("def f():\n    return 1", add_special_tokens=False)) \
        == "def f():\n    return 1"


def test_a_tokenizer_larger_than_the_vocabulary_is_refused_before_writing(
        tiny_model: MetaLlamaMTPAdapter, llama_sentencepiece: Path, tmp_path: Path) -> None:
    consolidated, params = _write_meta_release(tiny_model, tmp_path / "rel")
    with pytest.raises(ValueError, match=r"tokenizer.model has 320 tokens but the checkpoint's "
                                         r"vocabulary has 61"):
        convert_meta_checkpoint(consolidated, params, tmp_path / "out",
                                tokenizer=llama_sentencepiece)
    assert not (tmp_path / "out").exists()
