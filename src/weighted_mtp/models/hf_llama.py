"""Head 0 of the MTP model as a Hugging Face ``LlamaForCausalLM`` (same weights).

Head 0's path is a plain LLaMA: embeddings, the trunk, ``layers[-1]``, ``norm``, ``output``.
Only two things differ from Hugging Face's layout: the key names (a table below), and RoPE:
Meta rotates interleaved pairs ``(x[2j], x[2j+1])`` while Hugging Face rotates halves
``(x[j], x[j + hd/2])``. Permuting the rows of ``wq`` and ``wk`` within each head maps one
onto the other (the permutation of Hugging Face's ``convert_llama_weights_to_hf.py``), so
both models compute the same logits. Used to check generation against ``model.generate``
(docs/GENERATION.md) and by Hugging Face interop.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from weighted_mtp.models.args import ModelArgs

# Meta block suffix -> Hugging Face suffix under model.layers.{i}.
BLOCK_KEYS = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
TOP_KEYS = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def interleaved_to_halves(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the output rows of ``wq``/``wk`` from Meta's RoPE pairs to Hugging Face's.

    Within each head, rows ``(0, 1, 2, 3, …)`` = pairs ``(x0, x1), (x2, x3)…`` become
    ``(x0, x2, …, x1, x3, …)``: first members, then second members.

    Args:
        weight: ``(n_heads * hd, D)``.
        n_heads: Heads the rows belong to (``n_kv_heads`` for ``wk``).
    """
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.view(n_heads, head_dim // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def halves_to_interleaved(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of :func:`interleaved_to_halves` (Hugging Face rows back to Meta's)."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.view(n_heads, 2, head_dim // 2, cols).transpose(1, 2).reshape(rows, cols)


def hf_llama_config(args: ModelArgs, **overrides: object) -> LlamaConfig:
    """The ``LlamaConfig`` of head 0's path: trunk + head 0 = ``n_layer_blocks`` layers."""
    config = dict(
        vocab_size=args.vocab_size, hidden_size=args.dim,
        intermediate_size=args.ffn_hidden_dim, num_hidden_layers=args.n_layer_blocks,
        num_attention_heads=args.n_heads, num_key_value_heads=args.kv_heads,
        hidden_act="silu", max_position_embeddings=args.max_seq_len,
        rms_norm_eps=args.norm_eps, rope_theta=args.rope_theta, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False,
    )
    config.update(overrides)
    return LlamaConfig(**config)


def meta_to_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs
                          ) -> dict[str, torch.Tensor]:
    """Head 0's weights under Hugging Face names (``extra_heads.*``, ``value_head.*`` dropped).

    Raises:
        ValueError: A key of head 0's path is missing from ``state``.
    """
    out: dict[str, torch.Tensor] = {}
    wanted = dict(TOP_KEYS)
    for layer in range(args.n_layer_blocks):
        for meta, hf in BLOCK_KEYS.items():
            wanted[f"layers.{layer}.{meta}"] = f"model.layers.{layer}.{hf}"
    missing = sorted(key for key in wanted if key not in state)
    if missing:
        raise ValueError(f"state dict lacks {len(missing)} key(s) of head 0's path, e.g. "
                         f"{missing[:3]}; expected Meta key names (docs/MODEL.md)")
    for meta, hf in wanted.items():
        tensor = state[meta]
        if meta.endswith("attention.wq.weight"):
            tensor = interleaved_to_halves(tensor, args.n_heads)
        elif meta.endswith("attention.wk.weight"):
            tensor = interleaved_to_halves(tensor, args.kv_heads)
        out[hf] = tensor
    return out


def to_hf_llama(model: nn.Module, **config_overrides: object) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` computing head 0 of ``model`` (copied weights, same dtype).

    Args:
        model: A ``MetaLlamaMTPAdapter`` or ``MTPTransformer``.
        **config_overrides: ``LlamaConfig`` fields to set (e.g. ``bos_token_id``).
    """
    transformer = getattr(model, "transformer", model)
    args: ModelArgs = transformer.args
    weight = transformer.tok_embeddings.weight
    hf_model = LlamaForCausalLM(hf_llama_config(args, **config_overrides))
    hf_model.to(device=weight.device, dtype=weight.dtype)
    hf_model.load_state_dict(meta_to_hf_state_dict(transformer.state_dict(), args), strict=True)
    return hf_model.eval()
