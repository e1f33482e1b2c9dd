"""Shape checks shared by the weighting and loss code.

Bad shapes are user errors (a collator or model returning the wrong layout), so they raise
``ValueError`` saying what was expected and what was found rather than failing later inside
a broadcast that silently does the wrong thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def values_2d(values: torch.Tensor, name: str = "values") -> torch.Tensor:
    """Return value-head outputs as ``(B, S)``.

    The value head is a ``Linear(dim, 1)``, so callers hold either ``(B, S)`` or
    ``(B, S, 1)``; accepting both keeps that detail out of every caller.

    Args:
        values: Tensor of shape ``(B, S)`` or ``(B, S, 1)``.
        name: Argument name used in the error message.

    Returns:
        A ``(B, S)`` view of ``values``.

    Raises:
        ValueError: If ``values`` has any other shape.
    """
    if values.dim() == 3 and values.shape[-1] == 1:
        return values.squeeze(-1)
    if values.dim() == 2:
        return values
    raise ValueError(
        f"{name}: expected shape (B, S) or (B, S, 1), got {tuple(values.shape)}"
    )


def require_shape(
    tensor: torch.Tensor, expected: Sequence[int], name: str, where: str
) -> None:
    """Raise if ``tensor`` does not have exactly the shape ``expected``.

    Args:
        tensor: Tensor to check.
        expected: Expected shape.
        name: Argument name used in the error message.
        where: Name of the calling function, used in the error message.

    Raises:
        ValueError: If the shapes differ.
    """
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(
            f"{where}: expected {name} of shape {tuple(expected)}, "
            f"got {tuple(tensor.shape)}"
        )


def float_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """Return the floating dtype to compute in: at least fp32, fp64 if any input is.

    Weights and statistics are cheap (B·S elements), so computing them in fp32 even when
    the model runs in bf16 costs nothing and avoids bf16's 8-bit mantissa in exp().
    """
    dtype = torch.float32
    for tensor in tensors:
        if tensor.dtype == torch.float64:
            dtype = torch.float64
    return dtype
