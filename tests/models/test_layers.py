"""Layers against closed forms and an independent Meta-style reference forward."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.layers import (Attention, RMSNorm, apply_rotary_emb,
                                        precompute_freqs_cis, repeat_kv)


def test_rope_matches_closed_form_rotation_of_interleaved_pairs() -> None:
    seq, head_dim, theta = 5, 8, 10000.0
    x = torch.randn(1, seq, 1, head_dim, generator=torch.Generator().manual_seed(0))
    freqs = torch.view_as_real(precompute_freqs_cis(head_dim, seq, theta))
    rotated, _ = apply_rotary_emb(x, x, freqs)
    for t in range(seq):
        for j in range(head_dim // 2):
            angle = t * theta ** (-2 * j / head_dim)
            a, b = x[0, t, 0, 2 * j].item(), x[0, t, 0, 2 * j + 1].item()
            expected = (a * math.cos(angle) - b * math.sin(angle),
                        a * math.sin(angle) + b * math.cos(angle))
            got = rotated[0, t, 0, 2 * j: 2 * j + 2].tolist()
            assert math.isclose(got[0], expected[0], abs_tol=1e-5)
            assert math.isclose(got[1], expected[1], abs_tol=1e-5)


def test_rope_scores_depend_only_on_relative_position() -> None:
    head_dim = 16
    freqs = torch.view_as_real(precompute_freqs_cis(head_dim, 12))
    q = torch.randn(head_dim).expand(1, 12, 1, head_dim)
    k = torch.randn(head_dim).expand(1, 12, 1, head_dim)
    rq, rk = apply_rotary_emb(q, k, freqs)
    score = lambda i, j: (rq[0, i, 0] @ rk[0, j, 0]).item()  # noqa: E731
    assert math.isclose(score(3, 1), score(10, 8), rel_tol=1e-4)


def test_repeat_kv_maps_query_head_to_kv_head_q_div_nrep() -> None:
    x = torch.randn(2, 3, 2, 4)  # (B, S, KV, hd)
    repeated = repeat_kv(x, 3)  # (B, S, 6, hd)
    for q in range(6):
        assert torch.equal(repeated[:, :, q], x[:, :, q // 3])


def test_gqa_equals_full_attention_with_explicitly_repeated_kv_weights() -> None:
    torch.manual_seed(0)
    gqa_args = ModelArgs(dim=32, n_layers=1, n_heads=8, n_kv_heads=2, vocab_size=4,
                         max_seq_len=8)
    gqa = Attention(gqa_args)
    full = Attention(gqa_args.replace(n_kv_heads=None))
    n_rep, hd = 4, gqa_args.head_dim
    with torch.no_grad():
        full.wq.weight.copy_(gqa.wq.weight)
        full.wo.weight.copy_(gqa.wo.weight)
        for name in ("wk", "wv"):
            weight = getattr(gqa, name).weight.view(2, hd, 32)  # (KV, hd, D)
            getattr(full, name).weight.copy_(weight.repeat_interleave(n_rep, 0).reshape(-1, 32))
    x = torch.randn(2, 7, 32)
    freqs = torch.view_as_real(precompute_freqs_cis(hd, 7))
    torch.testing.assert_close(gqa(x, freqs), full(x, freqs), rtol=1e-5, atol=1e-6)


def test_rmsnorm_computes_in_fp32_and_casts_back() -> None:
    norm = RMSNorm(64).to(torch.bfloat16)  # a bf16 model: weight in bf16 too
    x = (torch.randn(3, 64) * 100).to(torch.bfloat16)
    out = norm(x)
    expected = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.to(torch.bfloat16), rtol=0, atol=0)


# --- an independent reference in Meta's style: complex RoPE, explicit masked softmax ---

def _ref_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) * weight


def _ref_rope(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    x_c = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))  # (B, S, H, hd/2)
    return torch.view_as_real(x_c * freqs_cis[None, :, None, :]).flatten(3)


def _ref_block(sd: dict, p: str, x: torch.Tensor, freqs_cis: torch.Tensor,
               args: ModelArgs) -> torch.Tensor:
    b, s, d = x.shape
    h_q, h_kv, hd = args.n_heads, args.kv_heads, args.head_dim
    a = _ref_norm(x, sd[p + "attention_norm.weight"], args.norm_eps)
    q = (a @ sd[p + "attention.wq.weight"].T).view(b, s, h_q, hd)
    k = (a @ sd[p + "attention.wk.weight"].T).view(b, s, h_kv, hd)
    v = (a @ sd[p + "attention.wv.weight"].T).view(b, s, h_kv, hd)
    q, k = _ref_rope(q, freqs_cis), _ref_rope(k, freqs_cis)
    k = k.repeat_interleave(h_q // h_kv, dim=2)
    v = v.repeat_interleave(h_q // h_kv, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    scores = scores + torch.full((s, s), float("-inf")).triu(1)
    attn = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, s, d)
    h = x + attn @ sd[p + "attention.wo.weight"].T
    f = _ref_norm(h, sd[p + "ffn_norm.weight"], args.norm_eps)
    w1, w2, w3 = (sd[p + f"feed_forward.w{i}.weight"] for i in (1, 2, 3))
    return h + (F.silu(f @ w1.T) * (f @ w3.T)) @ w2.T


def _ref_logits(sd: dict, args: ModelArgs, ids: torch.Tensor) -> torch.Tensor:
    hd = args.head_dim
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    angles = torch.outer(torch.arange(ids.shape[1]).float(), freqs)
    freqs_cis = torch.polar(torch.ones_like(angles), angles)
    h = sd["tok_embeddings.weight"][ids]
    last = args.n_layer_blocks - 1
    for i in range(last):
        h = _ref_block(sd, f"layers.{i}.", h, freqs_cis, args)
    heads = [f"layers.{last}."] + [f"extra_heads.{j}." for j in range(args.n_future_tokens - 1)]
    latents = torch.stack([_ref_block(sd, p, h, freqs_cis, args) for p in heads], dim=-2)
    return _ref_norm(latents, sd["norm.weight"], args.norm_eps) @ sd["output.weight"].T


def test_logits_match_meta_style_reference(tiny_model: MetaLlamaMTPAdapter,
                                           tiny_ids: torch.Tensor) -> None:
    sd = tiny_model.transformer.state_dict()
    with torch.no_grad():
        expected = _ref_logits(sd, tiny_model.args, tiny_ids)
        got = tiny_model(tiny_ids).logits
    assert got.shape == expected.shape == (2, 11, 3, 61)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
