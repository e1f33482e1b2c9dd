"""ModelArgs: Meta's fields and formulas, and the 7B_1T_4 size without allocating."""

from __future__ import annotations

import logging

import pytest
import torch

from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.checkpoint_io import count_params, meta_key_shapes
from weighted_mtp.models.transformer import MTPTransformer

ARGS_7B = dict(dim=4096, n_layers=32, n_heads=32, vocab_size=32000, multiple_of=256,
               n_future_tokens=4)


def test_ffn_hidden_width_of_7b_is_11008() -> None:
    assert ModelArgs(**ARGS_7B).ffn_hidden_dim == 11008


def test_ffn_dim_multiplier_and_rounding() -> None:
    # 4*128 = 512 → int(1024/3) = 341 → ×1.3 = 443 → next multiple of 32 = 448
    assert ModelArgs(dim=128, n_heads=4, n_layers=2, vocab_size=8, multiple_of=32,
                     ffn_dim_multiplier=1.3).ffn_hidden_dim == 448


def test_7b_parameter_count_on_meta_device() -> None:
    args = ModelArgs(**ARGS_7B)
    with torch.device("meta"):
        model = MTPTransformer(args)
    counted = sum(p.numel() for p in model.parameters())
    dim, hidden, vocab = 4096, 11008, 32000
    per_block = 4 * dim * dim + 3 * dim * hidden + 2 * dim
    exact = 32 * per_block + 2 * vocab * dim + dim  # 32 blocks = 29 layers + 3 extra heads
    assert exact == 6_738_415_616
    assert counted == exact
    assert count_params(meta_key_shapes(args)) == exact
    assert len(model.layers) == 29 and len(model.extra_heads) == 3
    assert abs(counted - 6.74e9) / 6.74e9 < 1e-3


def test_from_dict_ignores_unknown_meta_keys(caplog: pytest.LogCaptureFixture) -> None:
    params = {"dim": 64, "n_layers": 4, "n_heads": 4, "vocab_size": 10, "n_future_tokens": 2,
              "max_batch_size": 32, "use_scaled_rope": False}
    with caplog.at_level(logging.INFO):
        args = ModelArgs.from_dict(params, source="p.json")
    assert args.n_future_tokens == 2 and args.kv_heads == 4
    assert "max_batch_size" in caplog.text


@pytest.mark.parametrize(("extra", "message"), [
    ({"use_scaled_rope": True}, r"p.json: use_scaled_rope: True is not implemented \(only False"),
    ({"rope_scaling": {"factor": 8.0}}, r"p.json: rope_scaling: \{'factor': 8.0\} is not implemented"),
    ({"qk_norm": True}, r"p.json: qk_norm: unknown key, not a ModelArgs field; refused"),
])
def test_from_dict_refuses_settings_it_does_not_implement(extra: dict, message: str) -> None:
    params = {"dim": 64, "n_layers": 4, "n_heads": 4, "vocab_size": 10, **extra}
    with pytest.raises(ValueError, match=message):
        ModelArgs.from_dict(params, source="p.json")


def test_from_dict_rejects_a_file_without_core_keys() -> None:
    with pytest.raises(ValueError, match=r"cfg.json: not a Meta params.json, missing \['dim'"):
        ModelArgs.from_dict({"hidden_size": 64, "n_layers": 2, "n_heads": 2}, source="cfg.json")


@pytest.mark.parametrize(("change", "message"), [
    ({"dim": 30}, "divisible by n_heads"),
    ({"n_kv_heads": 3}, "multiple of n_kv_heads"),
    ({"n_future_tokens": 9}, "n_layers .* must be >= n_future_tokens"),
    ({"dim": "64"}, "dim must be an int"),
])
def test_invalid_args_name_the_field(change: dict, message: str) -> None:
    base = dict(dim=64, n_layers=4, n_heads=4, vocab_size=10)
    with pytest.raises(ValueError, match=message):
        ModelArgs(**{**base, **change})


def test_meta_params_round_trip() -> None:
    args = ModelArgs(**ARGS_7B)
    assert "n_kv_heads" not in args.to_meta_params()
    assert ModelArgs.from_dict(args.to_meta_params()) == args
    assert ModelArgs.from_dict(args.to_dict()) == args
