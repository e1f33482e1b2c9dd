"""Where the policy model comes from: a model directory on disk, or the generated micro model.

A generated micro model is random, so it is warmed up once (plain MTP pre-training on the
training corpus) before stage 1 can learn anything from its trunk. A marker file in the
model directory records whether that warm-up happened, so later runs reuse the directory
instead of repeating it, and a real checkpoint (no marker) is never pre-trained.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.micro import create_micro_model, entries_in_the_way
from weighted_mtp.models.checkpoint_io import (
    detect_value_head_kind, read_model_args, safetensors_shapes, weights_path,
)
from weighted_mtp.runtime.distributed import barrier, is_main_process
from weighted_mtp.runtime.files import atomic_file
from weighted_mtp.runtime.results import plain_floats

logger = logging.getLogger(__name__)

MARKER_FILE = "weighted_mtp.json"
# The models.policy.micro keys a generated model's params must still match (seed only
# chose its initial weights, which pre-training has moved anyway).
MICRO_KEYS = ("dim", "n_layers", "n_heads", "n_kv_heads", "n_future_tokens", "max_seq_len")


def load_or_create_policy(policy: Any, tokenizer: Any, sharded: bool = False,
                          activation_checkpointing: bool = False) -> MetaLlamaMTPAdapter:
    """Load ``models.policy.path``, or generate the micro model there when allowed.

    Under torchrun rank 0 generates the micro model and the others wait, then load it
    from disk, so every rank starts from the same weights and only one writes.

    Args:
        policy: The validated ``models.policy`` block.
        tokenizer: The tokenizer the data was encoded with (its size sets the micro vocab).
        sharded: Load straight into FSDP shards (``strategy: fsdp`` under torchrun): built on
            the meta device, rank 0 alone reads the file and broadcasts it, so ranks > 0
            never hold the whole model (docs/DISTRIBUTED.md, "Loading without a full copy per rank").
        activation_checkpointing: With ``sharded``, checkpoint each block before sharding it.

    Returns:
        The adapter on the CPU (the training node moves it to its device), or sharded.

    Raises:
        FileNotFoundError: No model at the path and ``models.policy.create_micro`` is false.
        ValueError: The model's vocabulary is smaller than the tokenizer's; the folder holds
            other files but no model (nothing is generated over them); or, with
            ``create_micro``, the generated micro model there disagrees with
            ``models.policy.micro`` (one line per key).
    """
    path = Path(policy.path)
    created = None
    if is_main_process():  # under torchrun rank 0 alone creates the directory ...
        created = _ensure_model_dir(policy, tokenizer, path)
    barrier()  # ... and the other ranks read it once it is complete
    fresh_value_head = _untrained_other_head(path, policy.value_head)
    if sharded:
        from weighted_mtp.runtime.device import resolve_device
        from weighted_mtp.runtime.parallel import compute_dtype
        from weighted_mtp.runtime.sharded_checkpoint import load_pretrained_sharded

        adapter = load_pretrained_sharded(
            path, value_head=policy.value_head, fresh_value_head=fresh_value_head,
            param_dtype=compute_dtype(policy.dtype, resolve_device(policy.device)),
            activation_checkpointing=activation_checkpointing)
    else:
        adapter = created or MetaLlamaMTPAdapter.from_pretrained(
            path, device="cpu", value_head=policy.value_head, fresh_value_head=fresh_value_head)
    if adapter.args.vocab_size < len(tokenizer):
        raise ValueError(
            f"models.policy.path: the model at '{path}' has vocab_size {adapter.args.vocab_size} "
            f"but the tokenizer has {len(tokenizer)} tokens; use the model's own tokenizer "
            f"(put it in '{path / 'tokenizer'}') or regenerate the micro model."
        )
    return adapter


def _ensure_model_dir(policy: Any, tokenizer: Any, path: Path) -> MetaLlamaMTPAdapter | None:
    """Generate the micro model at ``path`` when it is missing and allowed (returned);
    None when a model directory is already there."""
    if (path / "metadata.json").is_file():
        if policy.create_micro and read_marker(path).get("generated_micro"):
            _check_micro_params(policy.micro, path)
        return None
    if policy.create_micro:
        _check_nothing_in_the_way(path)
        return _create_micro(policy, tokenizer, path)
    raise FileNotFoundError(
        f"models.policy.path: no model directory at '{path}' (expected metadata.json and "
        "safetensors/model.safetensors). Convert a Meta checkpoint with "
        "`python -m weighted_mtp.models.convert`, or set models.policy.create_micro: true "
        "to generate the micro model."
    )


def _check_nothing_in_the_way(path: Path) -> None:
    """A folder with files but no model is someone's data: never generate over it."""
    found = entries_in_the_way(path)
    if found:
        listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise ValueError(
            f"models.policy.path: '{path}' holds {listed} but no metadata.json, so it is not a "
            "model directory, and generating the micro model there would delete them; empty the "
            "folder, point models.policy.path elsewhere, or convert the checkpoint it holds "
            "(python -m weighted_mtp.models.convert --out <another folder>) and point "
            "models.policy.path at the result."
        )


def _check_micro_params(micro: Any, path: Path) -> None:
    """A generated micro model is reused only while ``models.policy.micro`` still describes it."""
    args = read_model_args(path)
    found = {key: getattr(args, key) for key in MICRO_KEYS} | {"n_kv_heads": args.kv_heads}
    asked = {key: getattr(micro, key) for key in MICRO_KEYS}
    if micro.n_kv_heads is None:  # null means one per query head, as in ModelArgs
        asked["n_kv_heads"] = micro.n_heads
    differ = [
        f"models.policy.micro.{key}: the model at {path} has {key} {found[key]}, the config asks "
        f"for {asked[key]}; delete the folder to regenerate it or change the config"
        for key in MICRO_KEYS if found[key] != asked[key]
    ]
    if differ:
        raise ValueError("\n".join(differ))


def _create_micro(policy: Any, tokenizer: Any, path: Path) -> MetaLlamaMTPAdapter:
    micro = policy.micro
    adapter = create_micro_model(
        path, vocab_size=len(tokenizer), seed=micro.seed, value_head=policy.value_head, dim=micro.dim,
        n_layers=micro.n_layers, n_heads=micro.n_heads, n_kv_heads=micro.n_kv_heads,
        n_future_tokens=micro.n_future_tokens, max_seq_len=micro.max_seq_len,
    )
    tokenizer.save_pretrained(str(path / "tokenizer"))
    write_marker(path, {"generated_micro": True, "pretrained": False})
    return adapter


def _untrained_other_head(path: Path, kind: str) -> bool:
    """A generated micro model's value head is never trained in the directory (pre-training
    trains trunk and heads only), so another kind may replace it; a real model's may not."""
    if not read_marker(path).get("generated_micro"):
        return False
    found = detect_value_head_kind(safetensors_shapes(weights_path(path)))
    if found is not None and found != kind:
        logger.info("%s: its untrained %s value head is replaced by a fresh %s one "
                    "(models.policy.value_head)", path, found, kind)
        return True
    return False


def needs_pretraining(model_dir: str | Path) -> bool:
    """True for a generated micro model that has not been warmed up yet."""
    marker = read_marker(model_dir)
    return bool(marker.get("generated_micro")) and not marker.get("pretrained", False)


def save_pretrained_micro(model: MetaLlamaMTPAdapter, model_dir: str | Path,
                          metrics: dict[str, float]) -> MetaLlamaMTPAdapter:
    """Persist the warmed-up micro model in its directory, marked as pre-trained, so later
    runs reuse it. Under torchrun rank 0 writes and the others wait until it is complete."""
    path = Path(model_dir)
    if is_main_process():
        marker = read_marker(path)  # save_pretrained replaces the directory: keep the marker's content
        model.save_pretrained(path)
        write_marker(path, {**marker, "pretrained": True, "pretrain_metrics": plain_floats(metrics)})
        logger.info("Pre-trained micro model saved to %s (val_loss %.4f)", path, metrics.get("val_loss", float("nan")))
    barrier()
    return model


def read_marker(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_marker(model_dir: str | Path, content: dict[str, Any]) -> None:
    """Write the marker through a temp file and rename, like every other project file."""
    with atomic_file(Path(model_dir) / MARKER_FILE) as handle:
        handle.write(json.dumps(content, indent=2, sort_keys=True))
