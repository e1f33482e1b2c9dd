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


def head0_key_map(args: ModelArgs) -> dict[str, str]:
    """Meta key → Hugging Face key of every weight on head 0's path, in Meta's file order:
    the trunk and head 0 (``layers``) become ``model.layers``, ``output`` is ``lm_head``."""
    keys = {"tok_embeddings.weight": TOP_KEYS["tok_embeddings.weight"]}
    for layer in range(args.n_layer_blocks):
        for meta, hf in BLOCK_KEYS.items():
            keys[f"layers.{layer}.{meta}"] = f"model.layers.{layer}.{hf}"
    keys["norm.weight"] = TOP_KEYS["norm.weight"]
    keys["output.weight"] = TOP_KEYS["output.weight"]
    return keys


def block_key_to_hf(key: str) -> str:
    """A block key under any prefix in Hugging Face's names:
    ``extra_heads.0.attention.wq.weight`` → ``extra_heads.0.self_attn.q_proj.weight``; a key
    that is not a block weight is returned as it is."""
    for meta, hf in BLOCK_KEYS.items():
        if key.endswith("." + meta):
            return key[: -len(meta)] + hf
    return key


def block_key_to_meta(key: str) -> str:
    """Inverse of :func:`block_key_to_hf`."""
    for meta, hf in BLOCK_KEYS.items():
        if key.endswith("." + hf):
            return key[: -len(hf)] + meta
    return key


def _rope_heads(meta_key: str, args: ModelArgs) -> int | None:
    """Heads whose rows RoPE rotates in a Meta key's tensor (None: not ``wq``/``wk``)."""
    if meta_key.endswith("attention.wq.weight"):
        return args.n_heads
    if meta_key.endswith("attention.wk.weight"):
        return args.kv_heads
    return None


def to_hf_layout(meta_key: str, tensor: torch.Tensor, args: ModelArgs) -> torch.Tensor:
    """The tensor of a Meta key in Hugging Face's RoPE layout (``wq``/``wk`` rows permuted;
    a pure reordering, so :func:`to_meta_layout` restores it bit for bit)."""
    heads = _rope_heads(meta_key, args)
    return tensor if heads is None else interleaved_to_halves(tensor, heads)


def to_meta_layout(meta_key: str, tensor: torch.Tensor, args: ModelArgs) -> torch.Tensor:
    """Inverse of :func:`to_hf_layout` (``meta_key`` names the tensor's Meta key)."""
    heads = _rope_heads(meta_key, args)
    return tensor if heads is None else halves_to_interleaved(tensor, heads)


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


def args_from_hf_config(config: LlamaConfig, n_future_tokens: int, source: str) -> ModelArgs:
    """``ModelArgs`` of an MTP model whose head 0's path is this ``LlamaConfig``: its layers
    become the trunk and head 0, plus ``n_future_tokens - 1`` extra head blocks.

    ``multiple_of`` / ``ffn_dim_multiplier`` are chosen so Meta's SwiGLU formula gives
    ``intermediate_size`` exactly (256 / none when that works, as for LLaMA 7B's 11008).

    Args:
        config: The Hugging Face config (``LlamaConfig.from_pretrained``).
        n_future_tokens: Prediction heads n of the MTP model.
        source: The ``config.json`` path, named in errors.

    Raises:
        ValueError: A setting the MTP model does not implement (RoPE scaling, biases, an
            activation other than SiLU, a head width other than hidden / heads), one per
            ``; ``-separated item, or invalid values.
    """
    rope_theta, rope_type = _rope_settings(config)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    checks = (
        (rope_type == "default", f"rope type {rope_type!r} (only the default RoPE)"),
        (config.hidden_act == "silu", f"hidden_act {config.hidden_act!r} (only 'silu')"),
        (not getattr(config, "attention_bias", False), "attention_bias true (no biases)"),
        (not getattr(config, "mlp_bias", False), "mlp_bias true (no biases)"),
        (head_dim * heads == config.hidden_size,
         f"head_dim {head_dim} x {heads} heads != hidden_size {config.hidden_size}"),
    )
    problems = [message for ok, message in checks if not ok]
    if problems:
        raise ValueError(f"{source}: not implemented by the MTP model: " + "; ".join(problems))
    common = dict(dim=config.hidden_size, n_layers=config.num_hidden_layers + n_future_tokens - 1,
                  n_heads=heads, n_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                  vocab_size=config.vocab_size, norm_eps=float(config.rms_norm_eps),
                  rope_theta=float(rope_theta), max_seq_len=config.max_position_embeddings,
                  n_future_tokens=n_future_tokens)
    try:
        return _with_ffn_width(common, config.intermediate_size)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error


def _rope_settings(config: LlamaConfig) -> tuple[float, str]:
    """RoPE base and type, from ``rope_parameters`` (transformers 5) or ``rope_theta`` and
    ``rope_scaling`` (transformers 4)."""
    parameters = getattr(config, "rope_parameters", None)
    if parameters:
        return parameters.get("rope_theta", 10000.0), parameters.get("rope_type", "default")
    scaling = getattr(config, "rope_scaling", None) or {}
    return config.rope_theta, scaling.get("rope_type", scaling.get("type", "default"))


def _with_ffn_width(common: dict, intermediate_size: int) -> ModelArgs:
    """``ModelArgs`` whose ``ffn_hidden_dim`` is ``intermediate_size``."""
    base = int(2 * 4 * common["dim"] / 3)  # Meta's width before the multiplier and rounding
    candidates = ({"multiple_of": 256}, {"multiple_of": intermediate_size},
                  {"multiple_of": intermediate_size,
                   "ffn_dim_multiplier": intermediate_size / max(base, 1)})
    for ffn in candidates:
        args = ModelArgs(**common, **ffn)
        if args.ffn_hidden_dim == intermediate_size:
            return args
    raise ValueError(f"no multiple_of / ffn_dim_multiplier gives intermediate_size "
                     f"{intermediate_size} for dim {common['dim']}")


def meta_to_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs
                          ) -> dict[str, torch.Tensor]:
    """Head 0's weights under Hugging Face names (``extra_heads.*``, ``value_head.*`` dropped).

    Raises:
        ValueError: A key of head 0's path is missing from ``state``.
    """
    wanted = head0_key_map(args)
    missing = sorted(key for key in wanted if key not in state)
    if missing:
        raise ValueError(f"state dict lacks {len(missing)} key(s) of head 0's path, e.g. "
                         f"{missing[:3]}; expected Meta key names (docs/MODEL.md)")
    return {hf: to_hf_layout(meta, state[meta], args) for meta, hf in wanted.items()}


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
