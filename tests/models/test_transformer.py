"""The MTP transformer and adapter: causality, key names, head composition, dtypes."""

from __future__ import annotations

import pytest
import torch

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.checkpoint_io import meta_key_shapes


@pytest.mark.parametrize("j", [0, 4, 10])
def test_changing_token_j_leaves_earlier_positions_of_every_head_unchanged(
        tiny_model: MetaLlamaMTPAdapter, tiny_ids: torch.Tensor, j: int) -> None:
    changed = tiny_ids.clone()
    changed[:, j] = (changed[:, j] + 7) % tiny_model.args.vocab_size
    with torch.no_grad():
        before, after = tiny_model(tiny_ids), tiny_model(changed)
    for head in range(tiny_model.n_future_tokens):
        torch.testing.assert_close(after.logits[:, :j, head], before.logits[:, :j, head],
                                   rtol=0, atol=1e-6)
        assert not torch.allclose(after.logits[:, j, head], before.logits[:, j, head])
    torch.testing.assert_close(after.values[:, :j], before.values[:, :j], rtol=0, atol=1e-6)


def test_state_dict_keys_are_meta_names_without_rope(tiny_model: MetaLlamaMTPAdapter) -> None:
    state = tiny_model.transformer.state_dict()
    expected = meta_key_shapes(tiny_model.args)
    assert list(state) == list(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert "layers.0.attention.wq.weight" in state and "extra_heads.1.ffn_norm.weight" in state
    assert not any("freqs" in key for key in tiny_model.state_dict())
    assert set(tiny_model.value_head.state_dict()) == {"proj.weight", "proj.bias"}


def test_heads_read_the_trunk_independently(tiny_model: MetaLlamaMTPAdapter,
                                            tiny_ids: torch.Tensor) -> None:
    with torch.no_grad():
        out = tiny_model(tiny_ids)
        z = tiny_model.trunk_forward(tiny_ids)
        assert z.shape == (2, 11, 32)
        for k in range(3):
            torch.testing.assert_close(out.logits[:, :, k], tiny_model.head_logits(z, k),
                                       rtol=0, atol=0)
        t = tiny_model.transformer
        manual = t.output(t.norm(t.extra_heads[1](z, t.rope(11))))
        torch.testing.assert_close(out.logits[:, :, 2], manual, rtol=0, atol=0)
        torch.testing.assert_close(out.values, tiny_model.values_from_trunk(z), rtol=0, atol=0)
    assert out.values.shape == (2, 11)
    assert tiny_model(tiny_ids, return_logits=False).logits is None


def test_parameter_groups_partition_the_model(tiny_model: MetaLlamaMTPAdapter) -> None:
    groups = [list(tiny_model.trunk_parameters()), list(tiny_model.head_parameters()),
              list(tiny_model.value_head_parameters())]
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) == len(list(tiny_model.parameters()))
    assert groups[0][0] is tiny_model.transformer.tok_embeddings.weight


def test_bf16_cast_keeps_rope_in_fp32(tiny_model: MetaLlamaMTPAdapter,
                                      tiny_ids: torch.Tensor) -> None:
    rope = tiny_model.transformer.freqs_cis.clone()
    tiny_model.to(torch.bfloat16)
    assert tiny_model.transformer.tok_embeddings.weight.dtype == torch.bfloat16
    assert torch.equal(tiny_model.transformer.freqs_cis, rope)
    with torch.no_grad():
        out = tiny_model(tiny_ids)
    assert out.logits.dtype == torch.float32 and out.values.dtype == torch.float32


def test_constructor_allocates_nothing_on_meta_device(tiny_args) -> None:
    with torch.device("meta"):
        model = MetaLlamaMTPAdapter(tiny_args)
    assert all(p.is_meta for p in model.parameters())


def test_errors_for_bad_inputs(tiny_model: MetaLlamaMTPAdapter) -> None:
    with pytest.raises(ValueError, match="head_index must be in"):
        tiny_model.head_logits(torch.zeros(1, 2, 32), 3)
    with pytest.raises(ValueError, match="exceeds the RoPE table"):
        tiny_model.trunk_forward(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input_ids must be \(B, S\)"):
        tiny_model.trunk_forward(torch.zeros(5, dtype=torch.long))
