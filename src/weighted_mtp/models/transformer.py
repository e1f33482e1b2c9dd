"""Meta's multi-token-prediction transformer (Gloeckle et al. 2024, arXiv:2404.19737).

``tok_embeddings`` → ``layers[:-1]`` (shared trunk) → z. Head 0 is ``layers[-1]`` and
heads 1..n-1 are ``extra_heads``; every head block reads z independently (they are not
chained), then the shared ``norm`` and ``output``. The attribute names are Meta's state-dict
keys, so ``state_dict()`` of this module is exactly the layout of ``consolidated.pth``.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn

from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.layers import RMSNorm, TransformerBlock, precompute_freqs_cis

INIT_STD = 0.02


class MTPTransformer(nn.Module):
    """The trunk, the n head blocks, the shared norm and output projection.

    The RoPE table is a non-persistent fp32 buffer: it is not a checkpoint key and is
    recomputed in fp32 on the new device whenever the module is moved or cast, so
    ``.to(torch.bfloat16)`` never degrades it.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        if args.vocab_size <= 0:
            raise ValueError(f"ModelArgs.vocab_size is {args.vocab_size}; set it to the "
                             "tokenizer's vocabulary size before building the model")
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layer_blocks))
        self.extra_heads = nn.ModuleList(
            TransformerBlock(args) for _ in range(args.n_future_tokens - 1))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.register_buffer("freqs_cis", self._rope_table(self.norm.weight.device),
                             persistent=False)

    def _rope_table(self, device: torch.device) -> torch.Tensor:
        """fp32 ``(2 * max_seq_len, hd/2, 2)`` cos/sin table, like Meta's 2x-long cache."""
        freqs_cis = precompute_freqs_cis(self.args.head_dim, 2 * self.args.max_seq_len,
                                         self.args.rope_theta, device=device)
        return torch.view_as_real(freqs_cis)

    def refresh_rope_buffer(self) -> None:
        """Recompute the RoPE table in fp32 on the device of the parameters.

        Needed after parameters are swapped in from outside (``load_state_dict(assign=True)``
        from a model built on the meta device).
        """
        self.freqs_cis = self._rope_table(self.norm.weight.device)

    def _apply(self, fn: Callable, recurse: bool = True) -> "MTPTransformer":
        # Keep the RoPE table out of dtype casts: move parameters, then rebuild it in fp32.
        table = self._buffers.pop("freqs_cis")
        try:
            super()._apply(fn, recurse)
        finally:
            self._buffers["freqs_cis"] = table
        self.refresh_rope_buffer()
        return self

    def rope(self, seq_len: int) -> torch.Tensor:
        """The RoPE table for the first ``seq_len`` positions ``(S, hd/2, 2)``."""
        if seq_len > self.freqs_cis.shape[0]:
            raise ValueError(f"sequence length {seq_len} exceeds the RoPE table "
                             f"({self.freqs_cis.shape[0]} = 2 * max_seq_len); raise "
                             "max_seq_len in the model params")
        return self.freqs_cis[:seq_len]

    def head_block(self, head_index: int) -> TransformerBlock:
        """Block of head ``head_index`` (0 → ``layers[-1]``, k ≥ 1 → ``extra_heads[k-1]``)."""
        if not 0 <= head_index < self.args.n_future_tokens:
            raise ValueError(f"head_index must be in [0, {self.args.n_future_tokens}), "
                             f"found {head_index}")
        return self.layers[-1] if head_index == 0 else self.extra_heads[head_index - 1]

    def trunk(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embeddings and ``layers[:-1]``: ``(B, S)`` token ids → z ``(B, S, D)``."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, S), found shape {tuple(input_ids.shape)}")
        freqs = self.rope(input_ids.shape[1])
        h = self.tok_embeddings(input_ids)  # (B, S, D)
        for layer in self.layers[:-1]:
            h = layer(h, freqs)
        return h

    def head_logits(self, z: torch.Tensor, head_index: int) -> torch.Tensor:
        """One head: block, shared norm, output. z ``(B, S, D)`` → fp32 ``(B, S, V)``."""
        h = self.head_block(head_index)(z, self.rope(z.shape[1]))
        # fp32 logits as in Meta's reference: the softmax over V is where bf16 hurts.
        return self.output(self.norm(h)).float()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """All heads at once: ``(B, S)`` → logits ``(B, S, n, V)``."""
        z = self.trunk(input_ids)
        heads = [self.head_logits(z, k) for k in range(self.args.n_future_tokens)]
        return torch.stack(heads, dim=2)  # (B, S, n, V)

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Embeddings and the shared trunk blocks."""
        yield from self.tok_embeddings.parameters()
        for layer in self.layers[:-1]:
            yield from layer.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The n head blocks plus the shared ``norm`` and ``output``."""
        yield from self.layers[-1].parameters()
        yield from self.extra_heads.parameters()
        yield from self.norm.parameters()
        yield from self.output.parameters()


def init_weights(module: nn.Module, n_path_blocks: int,
                 generator: torch.Generator | None = None) -> None:
    """Random init for training from scratch: N(0, 0.02), residual outputs scaled.

    The projections that write into the residual stream (``wo``, ``w2``) get
    std 0.02 / sqrt(2 · blocks on a path), as in GPT-2, so the residual stream does not
    grow with depth and the first loss sits near log(V). Norm weights are 1, biases 0.

    Args:
        module: Any module (a transformer or a value head); initialised in place.
        n_path_blocks: Blocks between the embedding and one head's output.
        generator: Seeded generator for a deterministic init.
    """
    residual_std = INIT_STD / math.sqrt(2 * n_path_blocks)
    for name, param in module.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith("bias"):
                param.zero_()
            elif name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(param, std=residual_std, generator=generator)
            else:
                nn.init.normal_(param, std=INIT_STD, generator=generator)
