"""The critic: V_t = estimated probability that the program will be correct.

``linear`` and ``mlp`` read ``norm(z)``, the trunk representation shared by all MTP heads, so
one trunk forward feeds both the token heads and the value estimate. ``block`` gives the
critic a transformer block of its own on z (one more "head", initialised from head 0's
block when the model has no trained value head): the critic can then attend over the
program and the problem statement without changing the trunk the policy uses
(docs/METHOD.md, "Critic quality").
"""

from __future__ import annotations

import torch
from torch import nn

from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.layers import RMSNorm, TransformerBlock

VALUE_HEAD_KINDS = ("linear", "mlp", "block")


class ValueHead(nn.Module):
    """``linear``: Linear(D, 1). ``mlp``: Linear(D, D/4) → SiLU → Linear(D/4, 1).
    ``block``: TransformerBlock → RMSNorm → Linear(D, 1).

    Checkpoint keys (under ``value_head.``): ``proj.weight``, ``proj.bias``, plus
    ``fc.weight``, ``fc.bias`` for ``mlp``, and ``block.*``, ``norm.weight`` for ``block``.

    Args:
        args: The model's architecture (its ``dim``; ``block`` builds a block like the heads').
        kind: One of :data:`VALUE_HEAD_KINDS`.
    """

    def __init__(self, args: ModelArgs, kind: str = "linear") -> None:
        super().__init__()
        if kind not in VALUE_HEAD_KINDS:
            raise ValueError(f"value_head must be one of {VALUE_HEAD_KINDS}, found {kind!r}")
        self.kind = kind
        dim = args.dim
        if kind == "mlp":
            hidden = max(dim // 4, 1)
            self.fc = nn.Linear(dim, hidden)
            self.act = nn.SiLU()
            self.proj = nn.Linear(hidden, 1)
        elif kind == "block":
            self.block = TransformerBlock(args)
            self.norm = RMSNorm(dim, eps=args.norm_eps)
            self.proj = nn.Linear(dim, 1)
        else:
            self.proj = nn.Linear(dim, 1)

    @property
    def reads_trunk(self) -> bool:
        """True when the head takes raw z and the RoPE table (``block``), False when it
        takes the shared ``norm(z)``."""
        return self.kind == "block"

    def forward(self, x: torch.Tensor, freqs: torch.Tensor | None = None) -> torch.Tensor:
        """States ``(B, S, D)`` → fp32 values ``(B, S)``: ``norm(z)`` for ``linear``/``mlp``,
        z and ``freqs`` (RoPE) for ``block``."""
        if self.kind == "block":
            if freqs is None:
                raise ValueError("a 'block' value head needs the RoPE table (freqs)")
            x = self.norm(self.block(x, freqs))
        elif self.kind == "mlp":
            x = self.act(self.fc(x))
        return self.proj(x).squeeze(-1).float()


def value_head_shapes(args: ModelArgs, kind: str) -> dict[str, tuple[int, ...]]:
    """Checkpoint keys (without the ``value_head.`` prefix) and shapes of a head kind."""
    if kind not in VALUE_HEAD_KINDS:
        raise ValueError(f"value_head must be one of {VALUE_HEAD_KINDS}, found {kind!r}")
    with torch.device("meta"):
        head = ValueHead(args, kind)
    return {key: tuple(value.shape) for key, value in head.state_dict().items()}
