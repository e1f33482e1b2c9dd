"""Building blocks of Meta's LLaMA: RMSNorm, RoPE, GQA attention, SwiGLU, the block.

Parameter names (``wq``, ``wk``, ``wv``, ``wo``, ``w1``, ``w2``, ``w3``,
``attention_norm``, ``ffn_norm``) are Meta's checkpoint keys, so real weights load
without renaming. ``forward`` is the training path (full causal attention, no cache);
``forward_cached`` is generation's path: the new tokens only, keys and values kept in a
``KVCache``, an explicit mask and per-row RoPE positions (see docs/GENERATION.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.kv_cache import KVCache

# SDPA reads grouped key/value heads itself from torch 2.5 on (no repeated copy of the cache).
_SDPA_GQA = torch.torch_version.TorchVersion(torch.__version__) >= (2, 5)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in fp32 and cast back (Zhang & Sennrich 2019).

    fp32 matters under bf16: the mean of squares over 4096 channels loses too many bits
    in bf16. The weight multiplies after the cast back, as in Meta's reference.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def precompute_freqs_cis(head_dim: int, n_positions: int, theta: float = 10000.0,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """RoPE rotations e^{i·t·freq_j} for positions t < n_positions, in fp32.

    freq_j = theta^(-2j/head_dim) for j < head_dim/2 (Su et al. 2021; Meta's layout).

    Returns:
        Complex64 tensor ``(n_positions, head_dim // 2)``.
    """
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    freqs = 1.0 / (theta ** exponents)  # (hd/2,)
    positions = torch.arange(n_positions, device=device, dtype=torch.float32)
    angles = torch.outer(positions, freqs)  # (T, hd/2)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor,
                     freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate query and key pairs (x[2j], x[2j+1]) by the position's angle, in fp32.

    This is Meta's interleaved-complex layout: pair j is the complex number
    x[2j] + i·x[2j+1], multiplied by e^{i·t·freq_j}. Done in real arithmetic so the
    model holds no complex tensors (they do not survive ``.to(bf16)`` or NCCL).

    Args:
        xq: Queries ``(B, S, H, hd)``.
        xk: Keys ``(B, S, KV, hd)``.
        freqs: ``torch.view_as_real(freqs_cis)[:S]``, fp32 ``(S, hd/2, 2)`` = (cos, sin),
            the same positions for every row; or ``(B, S, hd/2, 2)``, each row's own
            positions (generation with left padding).

    Returns:
        Rotated (xq, xk) in their input dtypes.
    """
    if freqs.dim() == 4:  # per-row positions
        cos = freqs[:, :, None, :, 0]  # (B, S, 1, hd/2)
        sin = freqs[:, :, None, :, 1]
    else:
        cos = freqs[None, :, None, :, 0]  # (1, S, 1, hd/2)
        sin = freqs[None, :, None, :, 1]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        pairs = x.float().reshape(*x.shape[:-1], -1, 2)  # (B, S, H, hd/2, 2)
        real, imag = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
        return rotated.flatten(-2).type_as(x)  # (B, S, H, hd)

    return rotate(xq), rotate(xk)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each key/value head n_rep times so query head q reads kv head q // n_rep.

    Args:
        x: ``(B, S, KV, hd)``.
        n_rep: n_heads // n_kv_heads.

    Returns:
        ``(B, S, KV * n_rep, hd)``.
    """
    if n_rep == 1:
        return x
    batch, seq, kv_heads, head_dim = x.shape
    expanded = x[:, :, :, None, :].expand(batch, seq, kv_heads, n_rep, head_dim)
    return expanded.reshape(batch, seq, kv_heads * n_rep, head_dim)


class Attention(nn.Module):
    """Causal multi-head attention with grouped-query heads and RoPE, no biases."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.kv_heads
        self.head_dim = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """Attend causally over the whole sequence.

        Args:
            x: ``(B, S, D)``.
            freqs: RoPE table ``(S, hd/2, 2)`` (see ``apply_rotary_emb``).
        """
        batch, seq, _ = x.shape
        xq = self.wq(x).view(batch, seq, self.n_heads, self.head_dim)  # (B, S, H, hd)
        xk = self.wk(x).view(batch, seq, self.n_kv_heads, self.head_dim)  # (B, S, KV, hd)
        xv = self.wv(x).view(batch, seq, self.n_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs)
        n_rep = self.n_heads // self.n_kv_heads
        keys = repeat_kv(xk, n_rep).transpose(1, 2)  # (B, H, S, hd)
        values = repeat_kv(xv, n_rep).transpose(1, 2)  # (B, H, S, hd)
        # Right padding needs no mask: under causal attention real tokens never see it.
        out = F.scaled_dot_product_attention(xq.transpose(1, 2), keys, values, is_causal=True)
        out = out.transpose(1, 2).reshape(batch, seq, -1)  # (B, S, H * hd)
        return self.wo(out)

    def forward_cached(self, x: torch.Tensor, freqs: torch.Tensor, cache: KVCache, start: int,
                       mask: torch.Tensor) -> torch.Tensor:
        """Attend from new tokens over the cached ones and themselves (generation).

        The new keys and values are written into ``cache`` at slots ``[start, start + L)``
        first, so the block attends over slots ``[0, start + L)``; ``mask`` decides which
        of those each query may read (causality, left padding, discarded drafts).

        Args:
            x: New tokens ``(B, L, D)``.
            freqs: Per-row RoPE table at each new token's position ``(B, L, hd/2, 2)``.
            cache: This block's keys and values.
            start: Slot of the first new token.
            mask: Boolean ``(B, 1, L, start + L)``, True where a query may attend.
        """
        batch, seq, _ = x.shape
        xq = self.wq(x).view(batch, seq, self.n_heads, self.head_dim)  # (B, L, H, hd)
        xk = self.wk(x).view(batch, seq, self.n_kv_heads, self.head_dim)  # (B, L, KV, hd)
        xv = self.wv(x).view(batch, seq, self.n_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs)
        keys, values = cache.write(start, xk.transpose(1, 2), xv.transpose(1, 2))  # (B, KV, T, hd)
        n_rep = self.n_heads // self.n_kv_heads
        if _SDPA_GQA:
            out = F.scaled_dot_product_attention(xq.transpose(1, 2), keys, values,
                                                 attn_mask=mask, enable_gqa=n_rep > 1)
        else:
            out = F.scaled_dot_product_attention(
                xq.transpose(1, 2), keys.repeat_interleave(n_rep, dim=1),
                values.repeat_interleave(n_rep, dim=1), attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, seq, -1)  # (B, L, H * hd)
        return self.wo(out)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) · w3 x) (Shazeer 2020), hidden width from ``ModelArgs``."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        hidden = args.ffn_hidden_dim
        self.w1 = nn.Linear(args.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, args.dim, bias=False)
        self.w3 = nn.Linear(args.dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    """Pre-norm block: h = x + attn(norm(x)); out = h + ffn(norm(h))."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), freqs)
        return h + self.feed_forward(self.ffn_norm(h))

    def forward_cached(self, x: torch.Tensor, freqs: torch.Tensor, cache: KVCache, start: int,
                       mask: torch.Tensor) -> torch.Tensor:
        """The block on new tokens only; see ``Attention.forward_cached`` for the arguments."""
        h = x + self.attention.forward_cached(self.attention_norm(x), freqs, cache, start, mask)
        return h + self.feed_forward(self.ffn_norm(h))
