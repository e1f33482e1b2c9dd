"""Training checkpoints: atomic writes, validated reads, and exact resume.

A checkpoint is one ``torch.save`` dict (format below) holding everything needed to
continue a stage bit-for-bit on the same device: model (adapter incl. value head),
optimizer, scheduler, TD-statistics EMA, RNG states and the position in the data.

Format (``format_version`` 1)::

    format_version  int             1
    stage           str             "pretrain" | "stage1" | "stage2"
    epoch           int             epoch of the next micro-batch (0-based)
    batch_in_epoch  int             micro-batches of that epoch already consumed
    global_step     int             optimizer steps taken in this stage
    steps_per_epoch int             optimizer steps per full epoch
    total_steps     int             optimizer steps the stage runs
    model           dict[str, Tensor]   adapter.state_dict() (value_head.* included)
    optimizer       dict            optimizer.state_dict()
    scheduler       dict            scheduler.state_dict()
    ema             dict | None     TDStatsEMA.state_dict() when td_ema is enabled
    rng             dict            {"python", "torch", "cuda"} (see seeding.py)
    metrics         dict[str, float]    latest train and validation figures
    history         list[dict]      everything logged during the stage so far
    best            dict            BestTracker.state_dict() (monitor, best value, step, ...)
    config          dict            the merged run configuration, plain types

Files are written to a temporary file in the destination directory and renamed over the
target with ``os.replace``, so a crash mid-write leaves the previous checkpoint intact.

A sharded (FSDP) run writes the same content as a ``.dcp`` folder instead, model and
optimizer as one shard file per rank (:mod:`weighted_mtp.runtime.sharded_checkpoint`);
:func:`load_checkpoint` reads either, and :func:`restore_training_state` loads the shards
when given the folder.
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from weighted_mtp.runtime.files import atomic_file
from weighted_mtp.runtime.parallel import load_model_state, load_optimizer_state
from weighted_mtp.runtime.sharded_checkpoint import is_sharded_checkpoint, load_sharded, read_state

FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format_version",
    "stage",
    "epoch",
    "batch_in_epoch",
    "global_step",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "best",
    "config",
)
SHARDED_KEYS = ("model", "optimizer")  # in a .dcp folder's shards, not in its train_state.pt

log = logging.getLogger(__name__)


def checkpoint_path(checkpoint_dir: str | Path, stage: str, tag: str | int) -> Path:
    """Path of a stage checkpoint: ``checkpoint_{stage}_{tag}.pt``.

    Args:
        checkpoint_dir: Directory of the run's checkpoints.
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        tag: ``"best"``, ``"final"``, an epoch number (→ ``epoch_{e}``) or ``"step_{n}"``.

    Returns:
        The path (not created).
    """
    name = f"epoch_{tag}" if isinstance(tag, int) else tag
    return Path(checkpoint_dir) / f"checkpoint_{stage}_{name}.pt"


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically.

    ``torch.save`` goes to a temporary file in the same directory (same filesystem, so the
    rename is atomic), is flushed to disk, then ``os.replace``-d over ``path``. On any
    failure the temporary file is removed and the previous ``path`` is untouched.

    Args:
        path: Destination file; its parent directory is created.
        payload: The checkpoint dict.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        torch.save(dict(payload), handle)
    log.debug("Saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`, or a sharded one.

    Loads with ``weights_only=True``: a checkpoint holds tensors and plain Python values
    only, so nothing in it can execute code. A sharded ``.dcp`` folder gives its
    non-sharded state, plus ``model`` (full weights) when it holds the consolidated model
    (best and final); its shards are loaded by :func:`restore_training_state`.

    Args:
        path: The ``.pt`` file or ``.dcp`` folder.
        map_location: Where tensors are loaded (CPU by default; the loop moves them).

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: When the file is truncated or corrupt (an interrupted copy, a full disk),
            not a checkpoint of this format, or the folder an incomplete one.
    """
    path = Path(path)
    if is_sharded_checkpoint(path):
        payload = read_state(path)
        required = [key for key in REQUIRED_KEYS if key not in SHARDED_KEYS]
    else:
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint not found: {path}")
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:
            if _is_whole_archive(path):
                raise  # an intact file: torch's own error (a device, a refused type) says more
            raise ValueError(
                f"{path}: truncated or corrupt checkpoint ({path.stat().st_size} bytes; torch.load: "
                f"{_cause(error)}). "
                "Delete it and resume from another checkpoint of the run (training.resume_from), "
                "or start the stage again."
            ) from error
        required = list(REQUIRED_KEYS)
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found {type(payload).__name__}.")
    missing = [key for key in required if key not in payload]
    if missing:
        raise ValueError(f"{path}: not a weighted-mtp training checkpoint; missing keys {missing}.")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format_version {payload['format_version']}, "
            f"this code reads {FORMAT_VERSION}."
        )
    return payload


def _cause(error: BaseException) -> str:
    """``Type: first sentence`` of an error (torch's run on for several lines)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text.split(". ")[0][:160]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_whole_archive(path: Path) -> bool:
    """Whether ``path`` is a complete zip archive (torch.save's format): its central
    directory, at the very end of the file, reads."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def config_to_dict(config: Any) -> Any:
    """Turn a config (pydantic models, frozen dataclasses, mappings, namespaces) into plain
    Python types.

    The result is what checkpoints store and compare on resume: dicts, lists, str, int,
    float, bool, None (paths become strings). A ``RunConfig``'s ``raw`` params copy is not
    a field and is left out.
    """
    if hasattr(config, "model_dump") and not isinstance(config, type):  # a pydantic model
        return config_to_dict(config.model_dump())
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(key): config_to_dict(value) for key, value in config.items()}
    if hasattr(config, "__dict__") and not isinstance(config, type):
        return {key: config_to_dict(value) for key, value in vars(config).items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(value) for value in config]
    if isinstance(config, Enum):
        return config.value
    if isinstance(config, Path):
        return str(config)
    return config


def config_changes(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """List the config keys whose values differ, as ``"a.b.c: old -> new"``.

    Args:
        saved: The checkpoint's config dict.
        current: The config of the run that resumes.
        prefix: Dotted path of ``saved`` within the whole config (for recursion).

    Returns:
        One line per changed, added (``<absent> -> v``) or removed (``v -> <absent>``) key,
        sorted by key.
    """
    if isinstance(saved, dict) and isinstance(current, dict):
        changes: list[str] = []
        for key in sorted(set(saved) | set(current)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved:
                changes.append(f"{path}: <absent> -> {current[key]!r}")
            elif key not in current:
                changes.append(f"{path}: {saved[key]!r} -> <absent>")
            else:
                changes.extend(config_changes(saved[key], current[key], path))
        return changes
    if saved != current:
        return [f"{prefix or '<root>'}: {saved!r} -> {current!r}"]
    return []


def restore_training_state(
    payload: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: Any | None = None,
    shards: str | Path | None = None,
) -> None:
    """Load model, optimizer, scheduler and EMA states from a checkpoint, strictly.

    Under torchrun every rank loads the same file; an FSDP model takes its shards of it
    (resume with the strategy the checkpoint was written with). With ``shards`` (the
    ``.dcp`` folder ``payload`` came from) model and optimizer come from its shard files,
    each rank reading only its own pieces.

    RNG states are restored separately (:func:`~weighted_mtp.training.seeding.restore_rng_state`)
    at the point of the loop where they were captured.

    Raises:
        ValueError: When the checkpoint has EMA state and the run has no EMA or the reverse,
            since the TD weights would then differ from the interrupted run.
    """
    if shards is not None:
        load_sharded(shards, model, optimizer)
    else:
        load_model_state(model, payload["model"])
        load_optimizer_state(model, optimizer, payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    saved_ema = payload.get("ema")
    if (saved_ema is None) != (ema is None):
        raise ValueError(
            "Checkpoint and run disagree on training.stage2.td_ema.enabled: checkpoint "
            f"{'has' if saved_ema is not None else 'has no'} EMA state. Resume with the "
            "checkpoint's setting."
        )
    if ema is not None:
        ema.load_state_dict(saved_ema)


def report_config_changes(
    payload: Mapping[str, Any], current_config: dict[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
    """Log (warning) and return the config keys that changed since the checkpoint.

    Args:
        payload: The checkpoint.
        current_config: The resuming run's config as plain types.
        ignore: Dotted key prefixes whose change is expected (``training.resume_from``).
    """
    changes = [
        change for change in config_changes(payload.get("config", {}), current_config)
        if not change.startswith(ignore)
    ]
    if changes:
        log.warning(
            "Resuming %s with %d changed config key(s):\n  %s",
            payload.get("stage"),
            len(changes),
            "\n  ".join(changes),
        )
    return changes
