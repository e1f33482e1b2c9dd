"""from_pretrained / save_pretrained: exact round trip, strict errors, atomic replace."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models import create_micro_model
from weighted_mtp.models.checkpoint_io import (METADATA_FILE, PARAMS_FILE, WEIGHTS_FILE,
                                               file_sha256, verify_weights)

from model_helpers import build_tiny


def _assert_same_state(a: MetaLlamaMTPAdapter, b: MetaLlamaMTPAdapter) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _rewrite_weights(model_dir: Path, edit) -> None:
    """Edit the tensors and record the new file's hash, as save_pretrained would."""
    path = model_dir / WEIGHTS_FILE
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    metadata["sha256"][WEIGHTS_FILE] = file_sha256(path)
    metadata["stat"][WEIGHTS_FILE] = {"size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns}
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata))


def test_save_load_round_trip_is_exact(tiny_model: MetaLlamaMTPAdapter, tiny_ids: torch.Tensor,
                                       tmp_path: Path) -> None:
    out = tiny_model.save_pretrained(tmp_path / "m", model_name="tiny")
    loaded = MetaLlamaMTPAdapter.from_pretrained(out)
    _assert_same_state(tiny_model, loaded)
    with torch.no_grad():
        assert torch.equal(loaded(tiny_ids).logits, tiny_model(tiny_ids).logits)
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["model_name"] == "tiny" and loaded.model_name == "tiny"
    assert metadata["dtype"] == "float32" and metadata["value_head"] == "linear"
    assert metadata["n_params"] == sum(p.numel() for p in tiny_model.parameters())
    assert metadata["sha256"][WEIGHTS_FILE] == file_sha256(out / WEIGHTS_FILE)
    assert json.loads((out / PARAMS_FILE).read_text())["n_future_tokens"] == 3
    keys = set(load_file(str(out / WEIGHTS_FILE)))
    assert "layers.0.attention.wq.weight" in keys and "value_head.proj.weight" in keys
    assert not any(k.startswith("transformer.") for k in keys)


def test_mlp_value_head_round_trip_and_kind_mismatch(tiny_args, tmp_path: Path) -> None:
    model = build_tiny(tiny_args, value_head="mlp")
    model.save_pretrained(tmp_path / "m")
    _assert_same_state(model, MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m",
                                                                   value_head="mlp"))
    with pytest.raises(ValueError, match="holds a 'mlp' value head.*models.policy.value_head"):
        MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m", value_head="linear")


def test_missing_value_head_is_initialised_fresh_with_a_log(
        tiny_model: MetaLlamaMTPAdapter, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    tiny_model.save_pretrained(tmp_path / "m")
    _rewrite_weights(tmp_path / "m", lambda t: [t.pop(k) for k in list(t)
                                                if k.startswith("value_head.")])
    with caplog.at_level(logging.INFO, logger="weighted_mtp.models"):
        loaded = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m")
    assert "no value_head.* keys" in caplog.text
    assert not any(p.is_meta for p in loaded.parameters())
    assert torch.equal(loaded.transformer.output.weight, tiny_model.transformer.output.weight)
    assert torch.isfinite(loaded.value_head.proj.weight).all()
    assert torch.equal(loaded.value_head.proj.bias, torch.zeros(1))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.pop("layers.1.feed_forward.w2.weight"),
     r"missing keys \(1\): layers.1.feed_forward.w2.weight"),
    (lambda t: t.__setitem__("layers.9.attention.wq.weight", torch.zeros(2)),
     r"unexpected keys \(1\): layers.9.attention.wq.weight"),
    (lambda t: t.__setitem__("output.weight", torch.zeros(60, 32)),
     r"output.weight: expected \(61, 32\), found \(60, 32\)"),
])
def test_strict_loading_names_keys_and_shapes(tiny_model: MetaLlamaMTPAdapter, tmp_path: Path,
                                              edit, message: str) -> None:
    tiny_model.save_pretrained(tmp_path / "m")
    _rewrite_weights(tmp_path / "m", edit)
    with pytest.raises(ValueError, match=message) as error:
        MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m")
    assert str(tmp_path / "m" / WEIGHTS_FILE) in str(error.value)


def test_params_json_is_used_when_metadata_has_no_params(tiny_model: MetaLlamaMTPAdapter,
                                                         tmp_path: Path) -> None:
    out = tiny_model.save_pretrained(tmp_path / "m")
    (out / METADATA_FILE).unlink()
    _assert_same_state(tiny_model, MetaLlamaMTPAdapter.from_pretrained(out))
    (out / PARAMS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="configs/params.json"):
        MetaLlamaMTPAdapter.from_pretrained(out)


def test_missing_directory_and_weights(tiny_model: MetaLlamaMTPAdapter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MetaLlamaMTPAdapter.from_pretrained(tmp_path / "nowhere")
    out = tiny_model.save_pretrained(tmp_path / "m")
    (out / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        MetaLlamaMTPAdapter.from_pretrained(out)


def test_save_replaces_existing_dir_but_keeps_tokenizer(tiny_args, tmp_path: Path) -> None:
    target = tmp_path / "m"
    build_tiny(tiny_args, seed=0).save_pretrained(target)
    (target / "tokenizer").mkdir()
    (target / "tokenizer" / "tokenizer.json").write_text("{}")
    (target / "stale.txt").write_text("old")
    second = build_tiny(tiny_args, seed=1)
    second.save_pretrained(target)
    assert (target / "tokenizer" / "tokenizer.json").read_text() == "{}"
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp dirs left
    _assert_same_state(second, MetaLlamaMTPAdapter.from_pretrained(target))


def test_explicit_dtype_and_string_dtype_checks(tiny_model: MetaLlamaMTPAdapter,
                                                tmp_path: Path) -> None:
    out = tiny_model.save_pretrained(tmp_path / "m")
    loaded = MetaLlamaMTPAdapter.from_pretrained(out, dtype=torch.bfloat16)
    assert loaded.transformer.output.weight.dtype == torch.bfloat16
    assert loaded.transformer.freqs_cis.dtype == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="models.policy.dtype.*bf16 needs CUDA"):
            MetaLlamaMTPAdapter.from_pretrained(out, dtype="bfloat16")


def test_block_value_head_round_trip_and_fresh_copy_of_head_zero(tiny_args, tiny_ids, tmp_path: Path) -> None:
    model = build_tiny(tiny_args, value_head="block")
    model.save_pretrained(tmp_path / "m")
    keys = set(load_file(str(tmp_path / "m" / WEIGHTS_FILE)))
    assert "value_head.block.attention.wq.weight" in keys and "value_head.norm.weight" in keys
    loaded = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m", value_head="block")
    _assert_same_state(model, loaded)
    with torch.no_grad():  # equal weights (above); the outputs to float rounding (kernels may
        # take another path for the loaded, memory-mapped tensors' alignment)
        torch.testing.assert_close(loaded(tiny_ids).values, model(tiny_ids).values, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="holds a 'block' value head"):
        MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m", value_head="linear")
    # A fresh block head starts as a copy of head 0's block (trained features), with its own projection.
    fresh = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m", value_head="linear", fresh_value_head=True)
    assert fresh.value_head.kind == "linear"
    fresh_block = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m", value_head="block", fresh_value_head=True)
    head0 = fresh_block.transformer.layers[-1].state_dict()
    for key, value in fresh_block.value_head.block.state_dict().items():
        assert torch.equal(value, head0[key]), key
        assert value.data_ptr() != head0[key].data_ptr()  # a copy, not shared storage


def _micro(model_dir: Path) -> Path:
    create_micro_model(model_dir, vocab_size=300, seed=0, dim=32, n_layers=5, n_heads=2, n_kv_heads=1,
                       n_future_tokens=4, max_seq_len=64, multiple_of=16)
    return model_dir


def _hashed(caplog: pytest.LogCaptureFixture) -> bool:
    return "verifying the sha256" in caplog.text


def test_weights_untouched_since_written_load_without_hashing(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    model_dir = _micro(tmp_path / "m")
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    stat = (model_dir / WEIGHTS_FILE).stat()
    assert metadata["stat"][WEIGHTS_FILE] == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with caplog.at_level(logging.DEBUG, logger="weighted_mtp.models"):
        MetaLlamaMTPAdapter.from_pretrained(model_dir)
    assert not _hashed(caplog)


def test_one_changed_byte_is_named_with_both_files(tmp_path: Path) -> None:
    model_dir = _micro(tmp_path / "m")
    path = model_dir / WEIGHTS_FILE
    time.sleep(0.05)  # an edit after the save (file times tick every few ms)
    with open(path, "r+b") as handle:  # a byte of the last tensor's data: the header still reads
        handle.seek(-3, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-3, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ValueError) as error:
        MetaLlamaMTPAdapter.from_pretrained(model_dir)
    message = str(error.value)
    assert message.startswith(f"{path}: sha256 ") and f"recorded in {model_dir / METADATA_FILE}: the weights " \
        "changed or are corrupt since the directory was written. Restore the file" in message
    assert "\n" not in message


def test_truncated_or_overwritten_weights_are_named(tmp_path: Path) -> None:
    model_dir = _micro(tmp_path / "m")
    path = model_dir / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"^{path}: truncated or corrupt safetensors file \(.*\)\. Restore"):
        MetaLlamaMTPAdapter.from_pretrained(model_dir)
    with pytest.raises(ValueError, match=rf"^{path} is {len(data) // 2} bytes, but .*metadata.json recorded "
                                         rf"{len(data)} when it was written: the file is truncated or was replaced"):
        verify_weights(model_dir)
    path.write_bytes(b"\xff" * 16 + data[16:])  # the header overwritten, same size
    with pytest.raises(ValueError, match=rf"^{path}: truncated or corrupt safetensors file"):
        MetaLlamaMTPAdapter.from_pretrained(model_dir)


def test_a_copy_that_lost_the_file_time_is_hashed_and_loads(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    original = _micro(tmp_path / "m")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, copy_function=shutil.copy)  # like cp -r: new times
    metadata = json.loads((copy / METADATA_FILE).read_text())
    del metadata["stat"]  # a directory written before sizes and times were recorded
    (tmp_path / "old").mkdir()
    shutil.copytree(copy, tmp_path / "old" / "m")
    (tmp_path / "old" / "m" / METADATA_FILE).write_text(json.dumps(metadata))
    for model_dir in (copy, tmp_path / "old" / "m"):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="weighted_mtp.models"):
            loaded = MetaLlamaMTPAdapter.from_pretrained(model_dir)
        assert _hashed(caplog) and str(model_dir / WEIGHTS_FILE) in caplog.text
        _assert_same_state(loaded, MetaLlamaMTPAdapter.from_pretrained(original))
