"""The model directory on disk: the key table, strict checks, atomic writes.

Layout (docs/MODEL.md, "Model directory")::

    <model_dir>/
      metadata.json                  {"model_name", "params", "dtype", "n_params",
                                      "value_head", "sha256": {relative path: hex},
                                      "stat": {relative path: {"size", "mtime_ns"}}}
      safetensors/model.safetensors  Meta key names (+ value_head.* when present)
      configs/params.json            Meta's params.json (read when metadata lacks "params")
      tokenizer/                     Hugging Face tokenizer files (kept across saves)

The file uses Meta's keys (``layers.0.attention.wq.weight``); the adapter nests the
transformer under ``transformer.``, so a single lookup maps the two.

Loading checks the weights file against what was recorded when it was written
(:func:`verify_weights`): its size always, its sha256 when its size or modification time
differ from the recorded ones (docs/MODEL.md, "Errors").
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.value_head import VALUE_HEAD_KINDS, value_head_shapes
from weighted_mtp.runtime.files import replace_directory, staging_directory

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "safetensors/model.safetensors"
PARAMS_FILE = "configs/params.json"
TOKENIZER_DIR = "tokenizer"
VALUE_HEAD_PREFIX = "value_head."
TRANSFORMER_PREFIX = "transformer."
_MAX_LISTED = 10
_LOGGED_HASH_BYTES = 1 << 30  # hashing a file this big takes seconds: say so
_RESTORE = ("Restore the file from a good copy or re-create the model directory (save_pretrained, or "
            "python -m weighted_mtp.models.convert); weights changed on purpose must be saved with "
            "save_pretrained, which records their hash.")

# Checkpoint keys and their shapes as symbols resolved from ModelArgs. "{}" is the block
# index, under "layers.{}." and "extra_heads.{}.".
TOP_KEYS: dict[str, tuple[str, ...]] = {
    "tok_embeddings.weight": ("vocab", "dim"),
    "norm.weight": ("dim",),
    "output.weight": ("vocab", "dim"),
}
BLOCK_KEYS: dict[str, tuple[str, ...]] = {
    "attention.wq.weight": ("q_dim", "dim"),
    "attention.wk.weight": ("kv_dim", "dim"),
    "attention.wv.weight": ("kv_dim", "dim"),
    "attention.wo.weight": ("dim", "q_dim"),
    "feed_forward.w1.weight": ("hidden", "dim"),
    "feed_forward.w2.weight": ("dim", "hidden"),
    "feed_forward.w3.weight": ("hidden", "dim"),
    "attention_norm.weight": ("dim",),
    "ffn_norm.weight": ("dim",),
}
# Keys Meta's files carry that are not weights (the precomputed RoPE table).
META_IGNORED_KEYS = ("rope.freqs",)


def _sizes(args: ModelArgs) -> dict[str, int]:
    return {"vocab": args.vocab_size, "dim": args.dim, "q_dim": args.n_heads * args.head_dim,
            "kv_dim": args.kv_heads * args.head_dim, "hidden": args.ffn_hidden_dim}


def meta_key_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Every Meta checkpoint key of the transformer with its shape, in file order."""
    sizes = _sizes(args)
    shapes: dict[str, tuple[int, ...]] = {}
    blocks = [f"layers.{i}." for i in range(args.n_layer_blocks)]
    blocks += [f"extra_heads.{j}." for j in range(args.n_future_tokens - 1)]
    shapes["tok_embeddings.weight"] = tuple(sizes[s] for s in TOP_KEYS["tok_embeddings.weight"])
    for prefix in blocks:
        for suffix, symbols in BLOCK_KEYS.items():
            shapes[prefix + suffix] = tuple(sizes[s] for s in symbols)
    for key in ("norm.weight", "output.weight"):
        shapes[key] = tuple(sizes[s] for s in TOP_KEYS[key])
    return shapes


def value_head_key_shapes(args: ModelArgs, kind: str) -> dict[str, tuple[int, ...]]:
    """File keys (with the ``value_head.`` prefix) and shapes of a value head kind."""
    return {VALUE_HEAD_PREFIX + k: v for k, v in value_head_shapes(args, kind).items()}


def count_params(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Number of scalars described by a key → shape table."""
    total = 0
    for shape in shapes.values():
        size = 1
        for extent in shape:
            size *= extent
        total += size
    return total


def file_key(adapter_key: str) -> str:
    """Adapter ``state_dict`` key → file key (Meta's name, or ``value_head.*``)."""
    if adapter_key.startswith(TRANSFORMER_PREFIX):
        return adapter_key[len(TRANSFORMER_PREFIX):]
    return adapter_key


def detect_value_head_kind(keys: Iterable[str]) -> str | None:
    """Which value head a key set holds: ``block``, ``mlp``, ``linear`` or None (no value head)."""
    keys = set(keys)
    if any(key.startswith(VALUE_HEAD_PREFIX + "block.") for key in keys):
        return "block"
    if VALUE_HEAD_PREFIX + "fc.weight" in keys:
        return "mlp"
    if any(key.startswith(VALUE_HEAD_PREFIX) for key in keys):
        return "linear"
    return None


def _listed(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", … and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return f"({len(keys)}): {shown}{more}"


def check_shapes(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                 source: str, hint: str) -> None:
    """Strict key and shape comparison.

    Args:
        found: Key → shape of the tensors on disk.
        expected: Key → shape the model needs.
        source: The file, named in the error.
        hint: What to do when they differ.

    Raises:
        ValueError: Listing missing keys, unexpected keys and every shape mismatch (key,
            expected shape, found shape).
    """
    missing = set(expected) - set(found)
    unexpected = set(found) - set(expected)
    mismatched = [f"{key}: expected {tuple(expected[key])}, found {tuple(found[key])}"
                  for key in expected if key in found
                  and tuple(found[key]) != tuple(expected[key])]
    problems = []
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    if mismatched:
        more = len(mismatched) - _MAX_LISTED
        problems.append(f"shape mismatches ({len(mismatched)}):\n    "
                        + "\n    ".join(mismatched[:_MAX_LISTED])
                        + (f"\n    … and {more} more" if more > 0 else ""))
    if problems:
        raise ValueError(f"{source} does not match the model:\n  " + "\n  ".join(problems)
                         + f"\n{hint}")


def read_json(path: Path) -> Any:
    """A JSON file; invalid JSON is a ``ValueError`` naming the file, line and column."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: "
                         f"{error.msg}") from error


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """``metadata.json`` as a dict, or {} when the directory has none."""
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    metadata = read_json(path)
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(metadata).__name__}")
    return metadata


def read_model_args(model_dir: Path) -> ModelArgs:
    """ModelArgs from ``metadata.json["params"]``, else from ``configs/params.json``.

    Raises:
        FileNotFoundError: The directory, or both sources, are missing.
        ValueError: The params are malformed.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist; create it with "
                                "create_micro_model or the converter (python -m "
                                "weighted_mtp.models.convert)")
    metadata = read_metadata(model_dir)
    if "params" in metadata:
        return ModelArgs.from_dict(metadata["params"], source=f"{model_dir / METADATA_FILE}"
                                                              '["params"]')
    params_path = model_dir / PARAMS_FILE
    if not params_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no model params; expected {METADATA_FILE} with "
                                f'a "params" key or {PARAMS_FILE}')
    return ModelArgs.from_dict(read_json(params_path), source=str(params_path))


def weights_path(model_dir: Path) -> Path:
    """The safetensors file of a model directory, checked to exist."""
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a model directory needs {WEIGHTS_FILE} "
                                "(convert Meta's consolidated.pth with python -m "
                                "weighted_mtp.models.convert)")
    return path


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Key → shape of a safetensors file, read from its header without loading data.

    Raises:
        ValueError: Naming the file, when its header does not read (a truncated or
            overwritten file: the header lists every tensor's byte range).
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as error:
        raise ValueError(f"{path}: truncated or corrupt safetensors file ({error}). {_RESTORE}") from None


def verify_weights(model_dir: str | Path) -> None:
    """Compare the weights file with the record ``metadata.json`` keeps of it.

    The size is compared always (a truncated copy fails here, at no cost). The sha256 is
    recomputed when the file's size or modification time differ from the recorded ones —
    the file was edited, replaced or copied without keeping its time — or when none were
    recorded; a file untouched since it was written is trusted, since hashing reads all of
    it (about 10 s for the 7B model's 13.5 GB). A directory without a recorded sha256
    (written by another tool) is not checked.

    Raises:
        ValueError: Naming the file and ``metadata.json``, when the size or the sha256
            differ from the record.
    """
    model_dir = Path(model_dir)
    path, metadata = model_dir / WEIGHTS_FILE, read_metadata(model_dir)
    expected = (metadata.get("sha256") or {}).get(WEIGHTS_FILE)
    if not expected:
        return
    recorded, stat = (metadata.get("stat") or {}).get(WEIGHTS_FILE) or {}, path.stat()
    if recorded.get("size", stat.st_size) != stat.st_size:
        raise ValueError(f"{path} is {stat.st_size} bytes, but {model_dir / METADATA_FILE} recorded "
                         f"{recorded['size']} when it was written: the file is truncated or was replaced. {_RESTORE}")
    if recorded == _stat_record(path):
        return
    why = "its modification time differs from" if recorded else "no size and time are recorded in"
    log = logger.info if stat.st_size >= _LOGGED_HASH_BYTES else logger.debug
    log("verifying the sha256 of %s (%.1f GB): %s %s (copy model directories with cp -p or rsync -a "
        "to keep the time)", path, stat.st_size / 1e9, why, model_dir / METADATA_FILE)
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual[:16]}… differs from {expected[:16]}… recorded in "
                         f"{model_dir / METADATA_FILE}: the weights changed or are corrupt since the "
                         f"directory was written. {_RESTORE}")


def _stat_record(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def file_sha256(path: Path, chunk_bytes: int = 1 << 24) -> str:
    """Hex SHA-256 of a file, read in chunks (multi-GB checkpoints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def _tensor_dtype(tensors: Mapping[str, torch.Tensor]) -> str:
    names = sorted({dtype_name(t.dtype) for t in tensors.values()})
    return names[0] if len(names) == 1 else "mixed:" + ",".join(names)


def write_model_dir(model_dir: Path, tensors: Mapping[str, torch.Tensor], args: ModelArgs,
                    model_name: str) -> Path:
    """Write a complete model directory atomically.

    Everything goes to a sibling temp directory first; an existing ``model_dir`` is swapped
    out only once the new one is complete, and its ``tokenizer/`` is carried over.

    Args:
        model_dir: Target directory.
        tensors: File keys (Meta names, ``value_head.*``) → CPU tensors.
        args: The architecture, written to metadata and ``configs/params.json``.
        model_name: Stored in ``metadata.json``.

    Returns:
        The target path.
    """
    model_dir = Path(model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ValueError(f"cannot save a model to {model_dir}: it exists and is not a directory")
    tmp = staging_directory(model_dir)
    try:
        _write_contents(tmp, tensors, args, model_name)
        old_tokenizer = model_dir / TOKENIZER_DIR
        if old_tokenizer.is_dir():
            shutil.copytree(old_tokenizer, tmp / TOKENIZER_DIR)
        replace_directory(tmp, model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_dir


def _write_contents(tmp: Path, tensors: Mapping[str, torch.Tensor], args: ModelArgs,
                    model_name: str) -> None:
    (tmp / WEIGHTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp / PARAMS_FILE).parent.mkdir(parents=True, exist_ok=True)
    contiguous = {key: t.detach().contiguous() for key, t in tensors.items()}
    save_file(contiguous, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    (tmp / PARAMS_FILE).write_text(json.dumps(args.to_meta_params(), indent=2) + "\n")
    metadata = {
        "model_name": model_name,
        "params": args.to_dict(),
        "dtype": _tensor_dtype(contiguous),
        "n_params": sum(t.numel() for t in contiguous.values()),
        "value_head": detect_value_head_kind(contiguous),
        "sha256": {WEIGHTS_FILE: file_sha256(tmp / WEIGHTS_FILE)},
        "stat": {WEIGHTS_FILE: _stat_record(tmp / WEIGHTS_FILE)},  # renames keep it
    }
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def expected_file_shapes(args: ModelArgs, value_head: str | None) -> dict[str, tuple[int, ...]]:
    """Transformer keys plus the keys of a value head kind (None: no value head)."""
    shapes = meta_key_shapes(args)
    if value_head is not None:
        if value_head not in VALUE_HEAD_KINDS:
            raise ValueError(f"value_head must be one of {VALUE_HEAD_KINDS}, found "
                             f"{value_head!r}")
        shapes.update(value_head_key_shapes(args, value_head))
    return shapes
