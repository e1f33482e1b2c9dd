"""The critic: V_t = estimated probability that the program will be correct.

It reads ``norm(z)``, the trunk representation shared by all MTP heads, so one trunk
forward feeds both the token heads and the value estimate.
"""

from __future__ import annotations

import torch
from torch import nn

VALUE_HEAD_KINDS = ("linear", "mlp")


class ValueHead(nn.Module):
    """``linear``: Linear(D, 1). ``mlp``: Linear(D, D/4) → SiLU → Linear(D/4, 1).

    Checkpoint keys (under ``value_head.``): ``proj.weight``, ``proj.bias``, plus
    ``fc.weight``, ``fc.bias`` for ``mlp``.
    """

    def __init__(self, dim: int, kind: str = "linear") -> None:
        super().__init__()
        if kind not in VALUE_HEAD_KINDS:
            raise ValueError(f"value_head must be one of {VALUE_HEAD_KINDS}, found {kind!r}")
        self.kind = kind
        if kind == "mlp":
            hidden = max(dim // 4, 1)
            self.fc = nn.Linear(dim, hidden)
            self.act = nn.SiLU()
            self.proj = nn.Linear(hidden, 1)
        else:
            self.proj = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S, D)`` normalised trunk states → fp32 values ``(B, S)``."""
        if self.kind == "mlp":
            x = self.act(self.fc(x))
        return self.proj(x).squeeze(-1).float()


def value_head_shapes(dim: int, kind: str) -> dict[str, tuple[int, ...]]:
    """Checkpoint keys (without the ``value_head.`` prefix) and shapes of a head kind."""
    if kind not in VALUE_HEAD_KINDS:
        raise ValueError(f"value_head must be one of {VALUE_HEAD_KINDS}, found {kind!r}")
    if kind == "linear":
        return {"proj.weight": (1, dim), "proj.bias": (1,)}
    hidden = max(dim // 4, 1)
    return {"fc.weight": (hidden, dim), "fc.bias": (hidden,),
            "proj.weight": (1, hidden), "proj.bias": (1,)}
