"""backward_per_head gives the naive all-heads loss and gradients, frozen trunk included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.per_head import backward_per_head


def _head_loss_fn(ids: torch.Tensor, n_heads: int):
    def head_loss(k: int, logits: torch.Tensor) -> torch.Tensor:
        offset = k + 1  # head k predicts token t + k + 1
        ce = F.cross_entropy(logits[:, :-offset].reshape(-1, logits.shape[-1]),
                             ids[:, offset:].reshape(-1))
        return ce / n_heads
    return head_loss


def _value_loss(values: torch.Tensor) -> torch.Tensor:
    rewards = torch.tensor([[1.0], [0.0]])
    return 0.5 * ((values - rewards) ** 2).mean()


def _grads(model: MetaLlamaMTPAdapter) -> dict[str, torch.Tensor | None]:
    return {name: None if p.grad is None else p.grad.clone()
            for name, p in model.named_parameters()}


def test_per_head_backward_equals_naive(tiny_model: MetaLlamaMTPAdapter,
                                        tiny_ids: torch.Tensor) -> None:
    n = tiny_model.n_future_tokens
    head_loss = _head_loss_fn(tiny_ids, n)
    out = tiny_model(tiny_ids)
    naive_heads = [head_loss(k, out.logits[:, :, k]) for k in range(n)]
    (sum(naive_heads) + _value_loss(out.values)).backward()
    naive = _grads(tiny_model)
    tiny_model.zero_grad(set_to_none=True)

    z = tiny_model.trunk_forward(tiny_ids)
    extra = _value_loss(tiny_model.values_from_trunk(z))
    losses = backward_per_head(tiny_model, z, head_loss, extra_loss=extra)
    per_head = _grads(tiny_model)

    torch.testing.assert_close(torch.stack(losses), torch.stack(naive_heads).detach(),
                               rtol=1e-5, atol=1e-5)
    assert all(not loss.requires_grad for loss in losses)
    for name, grad in naive.items():
        assert grad is not None and per_head[name] is not None, name
        torch.testing.assert_close(per_head[name], grad, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("no_grad_trunk", [False, True])
def test_frozen_trunk_gives_grads_to_heads_only(tiny_model: MetaLlamaMTPAdapter,
                                                tiny_ids: torch.Tensor,
                                                no_grad_trunk: bool) -> None:
    for p in tiny_model.trunk_parameters():
        p.requires_grad_(False)
    if no_grad_trunk:
        with torch.no_grad():
            z = tiny_model.trunk_forward(tiny_ids)
    else:
        z = tiny_model.trunk_forward(tiny_ids)
    assert not z.requires_grad
    extra = _value_loss(tiny_model.values_from_trunk(z))
    backward_per_head(tiny_model, z, _head_loss_fn(tiny_ids, 3), extra_loss=extra)
    assert all(p.grad is None for p in tiny_model.trunk_parameters())
    assert all(p.grad is not None for p in tiny_model.head_parameters())
    assert all(p.grad is not None for p in tiny_model.value_head_parameters())


def test_rejects_non_scalar_head_loss(tiny_model: MetaLlamaMTPAdapter,
                                      tiny_ids: torch.Tensor) -> None:
    z = tiny_model.trunk_forward(tiny_ids)
    with pytest.raises(ValueError, match="head 0 returned"):
        backward_per_head(tiny_model, z, lambda k, logits: logits.sum(-1))
