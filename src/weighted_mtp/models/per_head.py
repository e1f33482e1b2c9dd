"""Memory-efficient multi-token loss: forward and backward one head at a time.

Gloeckle et al. 2024 (§2, Fig. 2): with n heads over a vocabulary V, building all logits
before the backward costs O(n·V) activations per token. Instead the trunk output z is cut
from its graph as a leaf; each head runs forward, computes its loss and backpropagates
into that leaf (accumulating z.grad) and into its own parameters, and its logits are freed
before the next head. A single backward through the trunk then carries the accumulated
gradient, together with any extra loss whose graph also reaches the trunk (the value
loss). Peak memory holds one head's logits: O(V + d) instead of O(n·V + d).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    from weighted_mtp.models.adapter import MetaLlamaMTPAdapter

HeadLossFn = Callable[[int, torch.Tensor], torch.Tensor]


def backward_per_head(adapter: "MetaLlamaMTPAdapter", z: torch.Tensor,
                      head_loss_fn: HeadLossFn,
                      extra_loss: torch.Tensor | None = None,
                      n_heads: int | None = None) -> list[torch.Tensor]:
    """Run the whole backward of sum_k head_loss_fn(k, logits_k) + extra_loss.

    Gradients equal those of the naive all-heads computation. When z does not require
    grad (frozen trunk, or z computed under ``no_grad``) only the heads' parameters
    receive gradients and the trunk backward is skipped.

    Args:
        adapter: The model; ``adapter.head_logits(z, k)`` is called for k = 0..n-1.
        z: Trunk output ``(B, S, D)`` from ``adapter.trunk_forward``, still attached to
            the trunk graph (or detached / no-grad for a frozen trunk).
        head_loss_fn: ``(head_index, head_logits (B, S, V)) -> scalar`` loss to
            backpropagate for that head, already scaled as the caller wants it summed
            (e.g. divided by the number of heads with targets).
        extra_loss: Optional scalar added to the objective whose graph may go through z,
            e.g. ``value_coef * value_loss``; backpropagated together with the trunk.
        n_heads: Run heads 0..n_heads−1 only (default: all); the others get no gradient.

    Returns:
        The n per-head losses as returned by ``head_loss_fn``, detached.
    """
    trunk_needs_grad = z.requires_grad
    # (B, S, D) leaf: each head's backward stops here and accumulates into z_leaf.grad.
    z_leaf = z.detach().requires_grad_(trunk_needs_grad)
    losses: list[torch.Tensor] = []
    for head_index in range(adapter.n_future_tokens if n_heads is None else n_heads):
        logits = adapter.head_logits(z_leaf, head_index)  # (B, S, V)
        loss = head_loss_fn(head_index, logits)
        _check_scalar(loss, head_index)
        if loss.requires_grad:
            loss.backward()  # frees this head's graph, logits included
        losses.append(loss.detach())
        del logits, loss
    roots: list[torch.Tensor] = []
    grads: list[torch.Tensor | None] = []
    if trunk_needs_grad and z_leaf.grad is not None:
        roots.append(z)
        grads.append(z_leaf.grad)
    if extra_loss is not None and extra_loss.requires_grad:
        roots.append(extra_loss)
        grads.append(None)  # scalar root: implicit gradient 1
    if roots:
        # One pass through the trunk for the heads' gradient and the extra loss together.
        torch.autograd.backward(roots, grads)
    return losses


def _check_scalar(loss: torch.Tensor, head_index: int) -> None:
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"head_loss_fn must return a scalar tensor; head {head_index} "
                         f"returned {shape}")
