"""Data parallelism for the MTP model: replicated (DDP-style) or sharded (FSDP).

Why not ``DistributedDataParallel``: the loss is computed head by head
(:func:`~weighted_mtp.models.backward_per_head`), calling the adapter's pieces directly
and running n + 1 backward passes per micro-batch. DDP's reducer hooks the module's
``forward`` and reduces once per backward, so it would be bypassed or would reduce n + 1
times. Instead, with ``strategy: ddp``:

- :func:`broadcast_parameters` copies rank 0's weights to every rank when a stage starts
  (a freshly initialised value head differs per rank otherwise);
- each rank accumulates its gradients locally over all backward passes and micro-batches;
- :func:`sync_gradients` averages them over ranks once per optimizer step, in flattened
  buckets (one collective per bucket), before clipping. Every rank then takes the same
  step and the replicas stay identical.

With ``strategy: fsdp`` (FSDP2, ``fully_shard``; CUDA/NCCL or CPU/gloo) every transformer
block — the trunk's, the heads' and a ``block`` value head's — is its own FSDP unit, and the
adapter is the root unit holding the rest (embedding, shared norm, output projection, value
projection). The per-head loss never calls the adapter's ``forward``, so the three methods it
does call (``trunk_forward``, ``head_logits``, ``values_from_trunk``) are registered as FSDP
forward methods: each gathers the root's weights, each block gathers its own when called, and
gradients are reduce-scattered after each of the n + 1 backward passes, so sharded training
needs no other change to the per-head loss. Parameters stay fp32 (AdamW's master weights);
on CUDA with ``models.policy.dtype: bfloat16`` they are gathered and computed in bf16 and
gradients reduced in fp32 (docs/DISTRIBUTED.md, "FSDP for the 7B model").
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from weighted_mtp.runtime.distributed import collective_device, get_world_size, is_distributed

log = logging.getLogger(__name__)

STRATEGIES = ("ddp", "fsdp")
BUCKET_ELEMENTS = 25 * 2**20  # ~100 MB of fp32 per collective, DDP's default bucket size


def prepare_model(model: nn.Module, strategy: str, device: torch.device, dtype: str = "float32",
                  activation_checkpointing: bool = False) -> nn.Module:
    """Make the ranks' models one data-parallel model (identity for one process).

    Call when a stage starts, after the model is on ``device`` and before the optimizer is
    built (FSDP replaces the parameters by shards).

    Args:
        model: The adapter (or the rho-1 reference being trained).
        strategy: ``ddp`` or ``fsdp`` (``training.distributed.strategy``).
        device: The ranks' device.
        dtype: ``models.policy.dtype``; ``bfloat16`` makes FSDP compute in bf16 on CUDA.
        activation_checkpointing: Recompute each transformer block's activations in the
            backward instead of keeping them (``training.distributed.activation_checkpointing``);
            applies with one process too. A model that arrives sharded was checkpointed (or
            not) by its loader: checkpointing must come before ``fully_shard``.

    Returns:
        The model, trained in place (FSDP changes its parameters to shards).

    Raises:
        ValueError: Unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"training.distributed.strategy: unknown {strategy!r}; expected ddp or fsdp")
    if activation_checkpointing and not is_sharded(model):
        checkpoint_blocks(model)
    if not is_distributed() or is_sharded(model):
        return model
    if strategy == "fsdp":
        broadcast_parameters(model)  # FSDP shards each rank's own copy: make them equal first
        return shard_model(model, param_dtype=compute_dtype(dtype, device))
    broadcast_parameters(model)
    return model


def compute_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """FSDP's gathered-parameter dtype: bf16 on CUDA when ``models.policy.dtype`` asks for
    it, else None (fp32: CPUs gain nothing from bf16 matmuls and the tests compare fp32)."""
    if device.type == "cuda" and dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    return None


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """Every ``TransformerBlock`` of the adapter: trunk, heads, and a ``block`` value head's."""
    transformer = model.transformer
    blocks = [*transformer.layers, *transformer.extra_heads]
    if getattr(model.value_head, "block", None) is not None:
        blocks.append(model.value_head.block)
    return blocks


def checkpoint_blocks(model: nn.Module) -> None:
    """Activation checkpointing per block: its forward keeps only its input and runs again
    in the backward (torch's composable ``checkpoint``: parameter names, so checkpoints and
    state dicts, are unchanged). Idempotent."""
    from torch.distributed._composable import checkpoint

    for block in transformer_blocks(model):
        if not getattr(block, "_wmtp_checkpointed", False):
            checkpoint(block)
            block._wmtp_checkpointed = True


def broadcast_parameters(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (in buckets).

    Needed even when every rank loaded the same file: a checkpoint without ``value_head.*``
    gets a randomly initialised value head, different on each rank. A model still on the
    CPU under NCCL (FSDP, before sharding) goes through the GPU one bucket at a time.

    Raises:
        RuntimeError: When the ranks' models differ in their tensors' shapes (a collective
            of mismatched sizes would fail less clearly).
    """
    if not is_distributed():
        return
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.numel() > 0]
    _check_same_shapes(tensors)
    device = collective_device()
    for bucket in _buckets(tensors):
        flat = _flatten_dense_tensors([t.detach() for t in bucket]).to(device)
        dist.broadcast(flat, src)
        with torch.no_grad():
            for tensor, value in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
                tensor.copy_(value)


def sync_gradients(parameters: Iterable[nn.Parameter], model: nn.Module | None = None) -> None:
    """Average the gradients of ``parameters`` over ranks (once per optimizer step).

    A parameter without a gradient on this rank (its head had no target in this rank's
    micro-batches) contributes zeros, so every rank reduces the same buckets. A no-op
    without a process group, and under FSDP (its units reduce in backward).

    Args:
        parameters: The optimizer's parameters, in the same order on every rank.
        model: The model, to recognise FSDP.
    """
    if not is_distributed() or (model is not None and is_sharded(model)):
        return
    params = [p for p in parameters if p.requires_grad]
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    grads = [p.grad for p in params]
    world = get_world_size()
    for bucket in _buckets(grads):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        for grad, value in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            grad.copy_(value)


def _buckets(tensors: list[torch.Tensor], limit: int = BUCKET_ELEMENTS) -> Iterator[list[torch.Tensor]]:
    """Consecutive runs of same dtype and device, each up to ``limit`` elements."""
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        same_kind = not bucket or (tensor.dtype, tensor.device) == (bucket[0].dtype, bucket[0].device)
        if bucket and (not same_kind or size + tensor.numel() > limit):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += tensor.numel()
    if bucket:
        yield bucket


def _check_same_shapes(tensors: list[torch.Tensor]) -> None:
    """One gather of the shape lists; a clear error when the ranks disagree."""
    shapes = [tuple(t.shape) for t in tensors]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, shapes)
    if any(other != shapes for other in gathered):
        raise RuntimeError(
            "The ranks hold different models (parameter shapes differ between ranks); every "
            "rank must load the same model directory.")


def shard_model(model: nn.Module, param_dtype: torch.dtype | None = None) -> nn.Module:
    """FSDP2 (``fully_shard``) on every transformer block, then on the adapter as the root.

    ``backward_per_head`` never calls the adapter's ``forward``; the methods it calls are
    registered as FSDP forward methods, so the root unit (embedding, shared norm, output,
    the value head's projections) gathers its weights whenever one of them runs. Shards go
    to the process group's device (the current GPU under NCCL).

    Args:
        model: A ``MetaLlamaMTPAdapter`` (``transformer`` and ``value_head``).
        param_dtype: Compute dtype (e.g. ``torch.bfloat16``); gradients are reduced in fp32.

    Returns:
        ``model``, whose parameters are now DTensor shards.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    # The value head returns ``squeeze(-1)`` (a view): FSDP warns in case the caller edits it
    # in place, which the loss code never does.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = device_mesh()
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    blocks = transformer_blocks(model)
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for method in FORWARD_METHODS:
        register_fsdp_forward_method(model, method)
    log.info("FSDP: %d blocks and the root sharded over %d ranks (compute dtype %s).",
             len(blocks), get_world_size(), param_dtype or "float32")
    return model


# The adapter methods the per-head loss, validation and the value stage call instead of forward.
FORWARD_METHODS = ("trunk_forward", "head_logits", "values_from_trunk")


def device_mesh() -> Any:
    """A 1-D mesh of every rank, on the process group's device type."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cuda" if dist.get_backend() == "nccl" else "cpu", (get_world_size(),))


def is_sharded(model: nn.Module) -> bool:
    """True when FSDP shards any of ``model``'s parameters."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def grad_norm_value(norm: torch.Tensor) -> float:
    """``clip_grad_norm_``'s result as a float (a DTensor under FSDP)."""
    full = getattr(norm, "full_tensor", None)
    return float(full() if callable(full) else norm)


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict: gathered from the shards under FSDP (every rank must call it
    then; each gets full CPU tensors, one parameter on the GPU at a time), else the
    module's own ``state_dict()``."""
    if not is_sharded(model):
        return model.state_dict()
    state = {}
    for key, value in model.state_dict().items():
        full = value.full_tensor() if hasattr(value, "full_tensor") else value
        state[key] = full.detach().cpu()
    return state


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict; under FSDP the full one, keyed by parameter name (every
    rank must call it)."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict strictly, into shards under FSDP."""
    if not is_sharded(model):
        model.load_state_dict(state, strict=True)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load what :func:`optimizer_state` returned (same strategy)."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
