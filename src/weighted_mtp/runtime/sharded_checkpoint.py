"""Sharded training checkpoints (``torch.distributed.checkpoint``) and consolidated models.

Under FSDP no rank holds the whole model, so gathering a 7B model and its AdamW state to
rank 0 for every checkpoint (~80 GB in one process, one file) is what the ``.pt`` format
would cost. A sharded checkpoint is a folder instead, each rank writing its own shards::

    checkpoint_<stage>_<tag>.dcp/
      __0_0.distcp, __1_0.distcp, ...   model and optimizer shards, one file per rank (DCP)
      .metadata                         DCP's index of the shards
      train_state.pt                    everything else the .pt holds (position, scheduler,
                                        EMA, RNG, history, best, config, run_id, objective,
                                        model_args), written by rank 0
      model/                            best and final only: the consolidated model, a model
                                        directory ``MetaLlamaMTPAdapter.from_pretrained`` loads
      COMPLETE                          written last: a folder without it is never loaded

The folder is filled under a temporary name (``.checkpoint_..._<tag>.dcp.tmp-<id>``, which
the next run's start-up removes when a crash left it) and renamed into place once every rank
has written its shards and rank 0 the marker, so a crash mid-save leaves the previous
checkpoint as it was (docs/TRAINING.md, "Checkpoint contents"; docs/DISTRIBUTED.md,
"Sharded checkpoints").

Model and optimizer states go through ``get_state_dict``/``set_state_dict``, which key the
optimizer state by parameter name: the same folder loads into an FSDP model on any number
of ranks or into a plain model in one process.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from weighted_mtp.runtime.distributed import all_gather_objects, barrier, get_world_size, is_main_process
from weighted_mtp.runtime.files import atomic_file, replace_directory, staging_directory

log = logging.getLogger(__name__)

SUFFIX = ".dcp"
MARKER = "COMPLETE"
STATE_FILE = "train_state.pt"
MODEL_DIR = "model"


def sharded_path(path: str | Path) -> Path:
    """The sharded checkpoint folder standing for a ``.pt`` path: ``checkpoint_x_last.dcp``."""
    return Path(path).with_suffix(SUFFIX)


def is_sharded_checkpoint(path: str | Path) -> bool:
    """True for a ``.dcp`` path (complete or not)."""
    return Path(path).suffix == SUFFIX


def is_complete(path: str | Path) -> bool:
    """True when the folder's marker is there: every shard and the state were written."""
    return (Path(path) / MARKER).is_file()


def save_sharded(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 payload: Mapping[str, Any], export_model: bool = False) -> Path:
    """Write a sharded checkpoint atomically; every rank must call it (collective).

    Args:
        path: The ``.dcp`` folder to write (replaced when it exists, e.g. the rolling
            ``last``).
        model: The (FSDP-sharded) model.
        optimizer: Its optimizer.
        payload: The rest of the checkpoint, plain Python and CPU tensors (rank 0's is
            written; every rank passes its own).
        export_model: Also write the consolidated model (``model/``), gathered to rank 0
            with CPU offload, so one process can load it without DCP.

    Returns:
        ``path``.
    """
    path = Path(path)
    staging = Path(all_gather_objects(str(staging_directory(path)) if is_main_process() else None)[0])
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=staging)
    plain = consolidated_model(model) if export_model else None  # collective; rank 0 gets it
    if is_main_process():
        with atomic_file(staging / STATE_FILE, "wb") as handle:
            torch.save(dict(payload), handle)
        if plain is not None:
            plain.save_pretrained(staging / MODEL_DIR)
        marker = {"world_size": get_world_size(), "global_step": payload.get("global_step"),
                  "written": time.strftime("%Y-%m-%d %H:%M:%S")}
        with atomic_file(staging / MARKER) as handle:
            handle.write(json.dumps(marker) + "\n")
        replace_directory(staging, path)
    barrier()  # the folder is in place before any rank goes on (and may read it)
    return path


def read_state(path: str | Path) -> dict[str, Any]:
    """The checkpoint's non-sharded part (``train_state.pt``), plus ``model`` (full
    state dict, adapter keys) when the folder holds the consolidated model.

    Raises:
        FileNotFoundError: No such folder.
        ValueError: The folder has no marker (its write never finished).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if not is_complete(path):
        raise ValueError(
            f"{path}: incomplete sharded checkpoint (no {MARKER} marker): its write did not finish, "
            "so it is never loaded. Resume from an earlier checkpoint (training.resume_from: last "
            "skips incomplete folders).")
    payload = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    if (path / MODEL_DIR).is_dir():
        payload["model"] = consolidated_weights(path / MODEL_DIR)
    return payload


def load_sharded(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Load a sharded checkpoint's model (and optimizer) state into ``model``, strictly.

    Every rank calls it; each reads only the pieces of the shards its parameters hold.
    ``model`` may be sharded over any number of ranks, or a plain model.
    """
    path = Path(path)
    if not is_complete(path):
        read_state(path)  # raises, naming the missing marker
    one_process = not (dist.is_available() and dist.is_initialized())  # e.g. a notebook reading shards
    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
        dcp.load(state, checkpoint_id=path, no_dist=one_process)
        set_model_state_dict(model, state["model"], options=StateDictOptions(strict=True))
        return
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=path, no_dist=one_process)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def consolidated_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict gathered to rank 0's CPU one parameter at a time (every rank
    calls it; ranks > 0 get ``{}`` and never hold the whole model)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def consolidated_model(model: nn.Module) -> nn.Module | None:
    """A plain CPU ``MetaLlamaMTPAdapter`` with ``model``'s weights on rank 0, None on the
    other ranks (every rank calls it)."""
    state = consolidated_state(model)
    return plain_model(model, state) if is_main_process() else None


def plain_model(model: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """An unsharded ``MetaLlamaMTPAdapter`` of ``model``'s shape: with ``state`` assigned
    (no copy), else with uninitialised CPU tensors to fill."""
    from weighted_mtp.models import MetaLlamaMTPAdapter

    with torch.device("meta"):
        plain = MetaLlamaMTPAdapter(model.args, value_head=model.value_head.kind)
    if state is None:
        plain.to_empty(device="cpu")
    else:
        plain.load_state_dict(dict(state), strict=True, assign=True)
    plain.transformer.refresh_rope_buffer()
    plain.model_name = model.model_name
    return plain


def consolidated_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The adapter state dict of a model directory (the consolidated export)."""
    from weighted_mtp.models import MetaLlamaMTPAdapter

    return MetaLlamaMTPAdapter.from_pretrained(model_dir, device="cpu").state_dict()


def load_pretrained_sharded(model_dir: str | Path, *, value_head: str | None = None,
                            fresh_value_head: bool = False, param_dtype: torch.dtype | None = None,
                            activation_checkpointing: bool = False) -> nn.Module:
    """A model directory loaded straight into FSDP shards, without a full copy per rank.

    Every rank builds the adapter on the meta device (no memory) and shards it; rank 0
    alone reads the file (``from_pretrained``: safetensors, one tensor at a time, strict
    keys and shapes) and its tensors are broadcast one by one, each rank keeping its shard
    (``set_model_state_dict(..., broadcast_from_rank0=True)``). Host memory: one full copy
    on rank 0, a shard elsewhere (docs/DISTRIBUTED.md, "Loading without a full copy per rank").
    Every rank must call it, inside the process group.

    Args:
        model_dir: A model directory (``checkpoint_io`` layout).
        value_head, fresh_value_head: As for ``MetaLlamaMTPAdapter.from_pretrained``; a
            fresh value head is initialised on rank 0 and broadcast like the rest.
        param_dtype: FSDP's compute dtype (``compute_dtype``).
        activation_checkpointing: Checkpoint each block (before sharding, the order FSDP
            and checkpointing compose in).

    Returns:
        The sharded adapter on the process group's device.
    """
    from weighted_mtp.models import MetaLlamaMTPAdapter
    from weighted_mtp.runtime.distributed import collective_device
    from weighted_mtp.runtime.parallel import checkpoint_blocks, shard_model

    full = (MetaLlamaMTPAdapter.from_pretrained(model_dir, device="cpu", value_head=value_head,
                                                fresh_value_head=fresh_value_head) if is_main_process() else None)
    described = (full.args, full.value_head.kind, full.model_name) if full is not None else None
    args, kind, name = all_gather_objects(described)[0]  # rank 0's reading of the directory
    with torch.device("meta"):
        model = MetaLlamaMTPAdapter(args, value_head=kind)
    if activation_checkpointing:
        checkpoint_blocks(model)
    shard_model(model, param_dtype=param_dtype)
    model.to_empty(device=collective_device())  # this rank's shards only, uninitialised
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=True)
    set_model_state_dict(model, full.state_dict() if full is not None else {}, options=options)
    model.transformer.refresh_rope_buffer()
    model.model_name = name
    log.info("Loaded %s from %s into FSDP shards (rank 0 read it, %d ranks).", name, model_dir, get_world_size())
    return model
