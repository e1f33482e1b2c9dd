"""Hugging Face interop: an MTP model directory as a ``LlamaForCausalLM`` folder, and back.

Export (``kedro wmtp export-hf``): head 0's path (embeddings, trunk, head 0's block, norm,
output) is a plain LLaMA, written as ``model.safetensors`` (sharded above
``max_shard_bytes``), ``config.json``, ``generation_config.json`` and the model's tokenizer,
so ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` load it. What a
``LlamaForCausalLM`` has no place for, the extra heads and the value head, goes to
``mtp_heads.safetensors`` (Hugging Face block names and RoPE layout) described by
``mtp_heads.json``: nothing is lost.

Import (``kedro wmtp import-hf``): a Hugging Face LLaMA folder becomes a model directory.
Its layers are the trunk and head 0; the extra heads are restored from ``mtp_heads.*`` when
the folder has them, else start as copies of the last block (as the MTP paper does when it
adds heads to a pretrained model); the value head is restored or initialised fresh.
Import of an export gives back the same tensors bit for bit.

Key names and the RoPE row permutation: ``hf_llama.py``. Layout: docs/MODEL.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GenerationConfig, LlamaConfig

from weighted_mtp.data.tokenizer import load_tokenizer
from weighted_mtp.models import checkpoint_io as ckpt
from weighted_mtp.models.adapter import MetaLlamaMTPAdapter, init_value_head
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.hf_llama import (
    args_from_hf_config, block_key_to_hf, block_key_to_meta, head0_key_map, hf_llama_config,
    to_hf_layout, to_meta_layout,
)
from weighted_mtp.runtime.files import replace_directory, staging_directory

logger = logging.getLogger(__name__)

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
SIDE_WEIGHTS = "mtp_heads.safetensors"
SIDE_JSON = "mtp_heads.json"
SIDE_FORMAT = "weighted-mtp/mtp-heads"
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9
# Keys some save_pretrained versions wrote that are not weights (a RoPE table).
IGNORED_HF_KEYS = ("model.rotary_emb.inv_freq",)
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}


# ----------------------------------------------------------------------------- export

def export_hf(model_dir: str | Path, out_dir: str | Path,
              max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """Write a model directory as a Hugging Face ``LlamaForCausalLM`` folder (head 0) plus
    ``mtp_heads.safetensors`` / ``mtp_heads.json`` (the other heads, the value head).

    Tensors keep their dtype and are read one shard at a time, so memory stays near one
    shard. The folder is written next to ``out_dir`` and renamed into place when complete.

    Args:
        model_dir: A model directory (``metadata.json``, ``safetensors/``, ``tokenizer/``).
        out_dir: A new or empty folder.
        max_shard_bytes: Largest ``model-*.safetensors`` shard (Hugging Face's index layout
            above it).

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: The model directory or its weights are missing.
        ValueError: The weights do not match the params, or ``out_dir`` is not empty.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    args = ckpt.read_model_args(model_dir)
    weights = ckpt.weights_path(model_dir)
    found = ckpt.safetensors_shapes(weights)
    kind = ckpt.detect_value_head_kind(found)
    ckpt.check_shapes(found, ckpt.expected_file_shapes(args, kind), str(weights),
                      hint="Fix or re-create the model directory before exporting it.")
    _check_empty(out_dir, "export-hf")
    tokenizer = _read_tokenizer(model_dir / ckpt.TOKENIZER_DIR, args)
    name = ckpt.read_metadata(model_dir).get("model_name", model_dir.name)
    staging = staging_directory(out_dir)
    try:
        with safe_open(str(weights), framework="pt") as handle:
            dtype = _write_hf_weights(handle, args, staging, max_shard_bytes)
            _write_side_file(handle, args, kind, name, staging)
        _write_hf_config(args, dtype, tokenizer, staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(staging))
        replace_directory(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("export-hf: %s → %s (LlamaForCausalLM of %d layers + %s)", model_dir, out_dir,
                args.n_layer_blocks, SIDE_WEIGHTS)
    return out_dir


def _write_hf_weights(handle: Any, args: ModelArgs, out: Path, max_shard_bytes: int
                      ) -> torch.dtype:
    """Head 0's path under Hugging Face names, shard by shard; returns its dtype."""
    keys = head0_key_map(args)
    shards = plan_shards({meta: _nbytes(handle, meta) for meta in keys}, max_shard_bytes)
    names = [HF_WEIGHTS] if len(shards) == 1 else [
        f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    progress = GroupProgress("export-hf", keys)
    weight_map: dict[str, str] = {}
    dtype = torch.float32
    for shard, name in zip(shards, names):
        tensors = {}
        for meta in shard:
            progress.step(meta)
            tensor = handle.get_tensor(meta)
            dtype = tensor.dtype
            tensors[keys[meta]] = to_hf_layout(meta, tensor, args).contiguous()
        save_file(tensors, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
        logger.info("export-hf: wrote %s (%d tensors, %.1f MB)", name, len(tensors),
                    sum(t.nbytes for t in tensors.values()) / 1e6)
    if len(shards) > 1:
        total = sum(_nbytes(handle, meta) for meta in keys)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / HF_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return dtype


def plan_shards(sizes: Mapping[str, int], max_bytes: int) -> list[list[str]]:
    """Split keys, in order, into shards of at most ``max_bytes`` (a larger tensor alone)."""
    shards: list[list[str]] = [[]]
    used = 0
    for key, size in sizes.items():
        if shards[-1] and used + size > max_bytes:
            shards.append([])
            used = 0
        shards[-1].append(key)
        used += size
    return shards


def _nbytes(handle: Any, key: str) -> int:
    view = handle.get_slice(key)
    count = 1
    for extent in view.get_shape():
        count *= extent
    return count * _DTYPE_BYTES.get(view.get_dtype(), 4)


def _write_side_file(handle: Any, args: ModelArgs, kind: str | None, name: str, out: Path
                     ) -> None:
    """Extra heads and value head, Hugging Face block names and RoPE layout, + their JSON."""
    side_keys = [key for key in handle.keys()
                 if key.startswith(("extra_heads.", ckpt.VALUE_HEAD_PREFIX))]
    progress = GroupProgress("export-hf", side_keys)
    tensors = {}
    for key in side_keys:
        progress.step(key)
        tensors[block_key_to_hf(key)] = to_hf_layout(key, handle.get_tensor(key), args).contiguous()
    save_file(tensors, str(out / SIDE_WEIGHTS), metadata={"format": "pt"})
    description = {
        "format": SIDE_FORMAT, "version": 1, "model_name": name,
        "n_future_tokens": args.n_future_tokens,
        "extra_heads": [f"extra_heads.{j}" for j in range(args.n_future_tokens - 1)],
        "value_head": kind,
        "trunk_hidden_state": args.n_layer_blocks - 1,
        "layout": "each extra_heads.{j}.* is a LlamaDecoderLayer (model.layers.* names, "
                  "rotate-half RoPE rows); head k >= 1 reads the input of the last layer "
                  "(hidden_states[trunk_hidden_state]) like head 0, so loading extra_heads."
                  "{k-1}.* into model.layers[-1] turns the model into head k",
        "params": args.to_dict(),
        "sha256": {SIDE_WEIGHTS: ckpt.file_sha256(out / SIDE_WEIGHTS)},
    }
    (out / SIDE_JSON).write_text(json.dumps(description, indent=2) + "\n")


def _write_hf_config(args: ModelArgs, dtype: torch.dtype, tokenizer: Any, out: Path) -> None:
    special = {}
    if tokenizer is not None:
        special = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id")
                   for name in ("bos", "eos", "pad")}
    config = hf_llama_config(args, architectures=["LlamaForCausalLM"],
                             dtype=ckpt.dtype_name(dtype), **special)
    config.save_pretrained(str(out))
    GenerationConfig.from_model_config(config).save_pretrained(str(out))


# ----------------------------------------------------------------------------- import

def import_hf(hf_dir: str | Path, out_dir: str | Path, n_future_tokens: int | None = None,
              value_head: str | None = None, model_name: str | None = None,
              seed: int = 0) -> Path:
    """Turn a Hugging Face ``LlamaForCausalLM`` folder into a model directory.

    Args:
        hf_dir: ``config.json`` + ``model.safetensors`` (or a sharded index), and a tokenizer
            (copied to ``<out_dir>/tokenizer``); ``mtp_heads.*`` when it is an export.
        out_dir: A new or empty folder.
        n_future_tokens: Heads n of the MTP model; None: the number in ``mtp_heads.json``.
        value_head: ``linear | mlp | block`` (fresh unless ``mtp_heads`` holds that kind),
            ``none`` (no value head: each recipe initialises its own), or None: the one in
            ``mtp_heads`` if any, else a fresh ``linear``.
        model_name: Stored in ``metadata.json``; default: ``mtp_heads.json``'s or the folder name.
        seed: Seed of a fresh value head.

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: ``config.json`` or the safetensors weights are missing.
        ValueError: Not a LLaMA, a setting the model does not implement, keys or shapes that
            do not match ``config.json``, ``mtp_heads`` of another model, a tokenizer
            larger than the vocabulary, or a non-empty ``out_dir``.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    config = read_hf_config(hf_dir)
    side = read_side_description(hf_dir)
    n = _resolve_n_future_tokens(n_future_tokens, side, hf_dir)
    args = _import_args(config, n, side, hf_dir)
    _check_empty(out_dir, "import-hf")
    tokenizer = _read_tokenizer(hf_dir, args)
    side_tensors = {} if side is None else read_side_tensors(hf_dir, side, args)
    tensors = _read_hf_transformer(hf_dir, config, args)
    tensors.update(_extra_heads(side_tensors, args, tensors))
    transformer = dict(tensors)
    tensors.update(_value_head(side, side_tensors, args, transformer, value_head, seed))
    name = model_name or (side or {}).get("model_name") or hf_dir.name
    ckpt.write_model_dir(out_dir, tensors, args, name)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out_dir / ckpt.TOKENIZER_DIR))
    logger.info("import-hf: %s → %s (%d blocks: %d trunk + %d heads, value head %s)", hf_dir,
                out_dir, args.n_layers, args.n_layer_blocks - 1, args.n_future_tokens,
                ckpt.detect_value_head_kind(tensors))
    return out_dir


def read_hf_config(hf_dir: Path) -> LlamaConfig:
    """The ``LlamaConfig`` of a Hugging Face folder, refused unless it is a LLaMA.

    Raises:
        FileNotFoundError: No folder or no ``config.json``.
        ValueError: Another architecture.
    """
    path = hf_dir / HF_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{hf_dir}: no {HF_CONFIG}; expected a Hugging Face model "
                                "folder (save_pretrained or kedro wmtp export-hf output)")
    raw = ckpt.read_json(path)
    architectures = raw.get("architectures") or ["LlamaForCausalLM"]
    if raw.get("model_type") != "llama" or "LlamaForCausalLM" not in architectures:
        raise ValueError(f"{path}: model_type {raw.get('model_type')!r}, architectures "
                         f"{architectures}: only LlamaForCausalLM (model_type 'llama') can be "
                         "imported")
    return LlamaConfig.from_pretrained(str(hf_dir), local_files_only=True)


def read_side_description(hf_dir: Path) -> dict[str, Any] | None:
    """``mtp_heads.json`` (checked to be ours, with its weights), or None when absent."""
    path = hf_dir / SIDE_JSON
    if not path.is_file():
        return None
    side = ckpt.read_json(path)
    if not isinstance(side, dict) or side.get("format") != SIDE_FORMAT:
        raise ValueError(f"{path}: not a {SIDE_FORMAT} description (format "
                         f"{side.get('format') if isinstance(side, dict) else side!r})")
    if not (hf_dir / SIDE_WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} describes {SIDE_WEIGHTS}, which is missing in {hf_dir}")
    return side


def _resolve_n_future_tokens(asked: int | None, side: dict[str, Any] | None, hf_dir: Path) -> int:
    if side is None:
        if asked is None:
            raise ValueError(f"{hf_dir} has no {SIDE_JSON}: say how many heads the MTP model "
                             "has (--n-future-tokens, e.g. 4)")
        return asked
    if asked is not None and asked != side["n_future_tokens"]:
        raise ValueError(f"{hf_dir / SIDE_JSON} holds the heads of an n_future_tokens="
                         f"{side['n_future_tokens']} model but {asked} was asked; omit "
                         f"--n-future-tokens, or remove {SIDE_JSON} and {SIDE_WEIGHTS} to start "
                         "new heads from the last block")
    return int(side["n_future_tokens"])


def _import_args(config: LlamaConfig, n: int, side: dict[str, Any] | None, hf_dir: Path
                 ) -> ModelArgs:
    """The args derived from ``config.json``; with ``mtp_heads.json``, its exact params
    (``multiple_of``, …), checked to describe the same model."""
    derived = args_from_hf_config(config, n, source=str(hf_dir / HF_CONFIG))
    if side is None:
        return derived
    stored = ModelArgs.from_dict(side["params"], source=f"{hf_dir / SIDE_JSON}[\"params\"]")
    differ = [f"{field} {getattr(stored, field)} vs {getattr(derived, field)}"
              for field in ("dim", "n_layers", "n_heads", "kv_heads", "vocab_size",
                            "ffn_hidden_dim", "norm_eps", "rope_theta", "max_seq_len",
                            "n_future_tokens")
              if getattr(stored, field) != getattr(derived, field)]
    if differ:
        raise ValueError(f"{hf_dir / SIDE_JSON} and {HF_CONFIG} describe different models ("
                         + "; ".join(differ) + "): the side file belongs to another export")
    return stored


def hf_weight_shapes(hf_dir: Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Key → (file, shape) of a Hugging Face folder's safetensors, single file or sharded.

    Raises:
        FileNotFoundError: No safetensors weights (a ``pytorch_model.bin`` is named).
    """
    index = hf_dir / HF_INDEX
    if index.is_file():
        files = sorted({hf_dir / name for name in ckpt.read_json(index)["weight_map"].values()})
    elif (hf_dir / HF_WEIGHTS).is_file():
        files = [hf_dir / HF_WEIGHTS]
    else:
        legacy = sorted(path.name for path in hf_dir.glob("pytorch_model*.bin"))
        hint = (f" (found {legacy[0]}: re-save the model with save_pretrained(..., "
                "safe_serialization=True))" if legacy else "")
        raise FileNotFoundError(f"{hf_dir}: no {HF_WEIGHTS} or {HF_INDEX}{hint}")
    shapes: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{index} lists {path.name}, which is missing")
        shapes.update({key: (path, shape)
                       for key, shape in ckpt.safetensors_shapes(path).items()})
    return shapes


def _read_hf_transformer(hf_dir: Path, config: LlamaConfig, args: ModelArgs
                         ) -> dict[str, torch.Tensor]:
    """Head 0's path under Meta names (``layers.*``, ``output`` …), every shape checked."""
    keys = head0_key_map(args)
    meta_shapes = ckpt.meta_key_shapes(args)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    expected = {hf: meta_shapes[meta] for meta, hf in keys.items()
                if not (tied and meta == "output.weight")}
    files = {key: value for key, value in hf_weight_shapes(hf_dir).items()
             if key not in IGNORED_HF_KEYS}
    ckpt.check_shapes({key: shape for key, (_, shape) in files.items()}, expected, str(hf_dir),
                      hint=f"The weights do not match {hf_dir / HF_CONFIG}.")
    progress = GroupProgress("import-hf", keys)
    tensors: dict[str, torch.Tensor] = {}
    with contextlib.ExitStack() as stack:
        handles = {path: stack.enter_context(safe_open(str(path), framework="pt"))
                   for path in {path for path, _ in files.values()}}
        for meta, hf in keys.items():
            if hf not in files:  # the tied lm_head
                continue
            progress.step(meta)
            tensors[meta] = to_meta_layout(meta, handles[files[hf][0]].get_tensor(hf), args)
    if tied:  # our output projection is its own tensor: start it as the embeddings
        tensors["output.weight"] = tensors["tok_embeddings.weight"].clone()
        logger.info("import-hf: %s ties lm_head to the embeddings; output.weight starts as "
                    "a copy", hf_dir / HF_CONFIG)
    return tensors


def read_side_tensors(hf_dir: Path, side: dict[str, Any], args: ModelArgs
                      ) -> dict[str, torch.Tensor]:
    """``mtp_heads.safetensors`` under Meta names and layout, every key and shape checked
    against ``args`` and the value head kind ``mtp_heads.json`` names."""
    path = hf_dir / SIDE_WEIGHTS
    shapes = {key: shape for key, shape in ckpt.meta_key_shapes(args).items()
              if key.startswith("extra_heads.")}
    if side.get("value_head") is not None:
        shapes.update(ckpt.value_head_key_shapes(args, side["value_head"]))
    expected = {block_key_to_hf(key): shape for key, shape in shapes.items()}
    ckpt.check_shapes(ckpt.safetensors_shapes(path), expected, str(path),
                      hint=f"Is {hf_dir / SIDE_JSON} the description of this file?")
    progress = GroupProgress("import-hf", shapes)
    tensors = {}
    with safe_open(str(path), framework="pt") as handle:
        for hf in expected:
            meta = block_key_to_meta(hf)
            progress.step(meta)
            tensors[meta] = to_meta_layout(meta, handle.get_tensor(hf), args)
    return tensors


def _extra_heads(side_tensors: Mapping[str, torch.Tensor], args: ModelArgs,
                 transformer: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``extra_heads.*`` from the side file, else copies of the last block."""
    stored = {key: value for key, value in side_tensors.items() if key.startswith("extra_heads.")}
    if stored or args.n_future_tokens == 1:
        return stored
    last = f"layers.{args.n_layer_blocks - 1}."
    wanted = [key for key in ckpt.meta_key_shapes(args) if key.startswith("extra_heads.")]
    logger.info("import-hf: %d extra heads start as copies of the last block (%s)",
                args.n_future_tokens - 1, last.rstrip("."))
    return {key: transformer[last + key.split(".", 2)[2]].clone() for key in wanted}


def _value_head(side: dict[str, Any] | None, side_tensors: Mapping[str, torch.Tensor],
                args: ModelArgs, transformer: Mapping[str, torch.Tensor], asked: str | None,
                seed: int) -> dict[str, torch.Tensor]:
    """``value_head.*``: the side file's when it holds the asked kind, fresh otherwise, none
    for ``"none"``."""
    stored = (side or {}).get("value_head")
    kind = asked or stored or "linear"
    if kind == "none":
        return {}
    if kind == stored:
        return {key: value for key, value in side_tensors.items()
                if key.startswith(ckpt.VALUE_HEAD_PREFIX)}
    if stored is not None:
        logger.info("import-hf: the %s value head of %s is replaced by a fresh %s one",
                    stored, SIDE_WEIGHTS, kind)
    return fresh_value_head(args, kind, transformer, seed)


def fresh_value_head(args: ModelArgs, kind: str, transformer: Mapping[str, torch.Tensor],
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """A new value head's file tensors (``value_head.*``), initialised like the adapter's
    (``init_value_head``: a ``block`` head starts from head 0's block), in the model's dtype."""
    with torch.device("meta"):
        adapter = MetaLlamaMTPAdapter(args, value_head=kind)
    adapter.transformer.load_state_dict(dict(transformer), strict=True, assign=True)
    adapter.value_head.to_empty(device="cpu")
    init_value_head(adapter, generator=torch.Generator().manual_seed(seed))
    dtype = transformer["tok_embeddings.weight"].dtype
    return {ckpt.VALUE_HEAD_PREFIX + key: value.detach().to(dtype)
            for key, value in adapter.value_head.state_dict().items()}


# ----------------------------------------------------------------------------- shared

def _check_empty(out_dir: Path, command: str) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir}: exists and is not an empty folder; {command} writes a new "
                         "folder and never replaces one: choose another path or delete it")


def _read_tokenizer(folder: Path, args: ModelArgs) -> Any:
    """The tokenizer in ``folder`` (or ``folder/tokenizer``), or None with a warning."""
    try:
        tokenizer = load_tokenizer(folder)
    except FileNotFoundError:
        logger.warning("no tokenizer in %s: the output has none (add one before loading it "
                       "with AutoTokenizer or training it)", folder)
        return None
    if len(tokenizer) > args.vocab_size:
        raise ValueError(f"the tokenizer in {folder} has {len(tokenizer)} tokens but the "
                         f"model's vocabulary has {args.vocab_size}")
    return tokenizer


def tensor_group(key: str) -> str:
    """The group a key belongs to in progress lines: its block (``layers.3``,
    ``model.layers.3``, ``extra_heads.0``), ``value_head``, or the tensor's module."""
    block = re.match(r"(.*?\b(?:layers|extra_heads)\.\d+)\.", key)
    if block:
        return block.group(1)
    if key.startswith(ckpt.VALUE_HEAD_PREFIX):
        return "value_head"
    return key.rsplit(".", 1)[0]


class GroupProgress:
    """One log line per tensor group (a block, the embeddings, …) as a long copy reaches it:
    a 7B model is 30-odd lines, enough to see it move without flooding the log."""

    def __init__(self, what: str, keys: Iterable[str]) -> None:
        self.what = what
        self.total = len(dict.fromkeys(tensor_group(key) for key in keys))
        self.seen: set[str] = set()

    def step(self, key: str) -> None:
        group = tensor_group(key)
        if group not in self.seen:
            self.seen.add(group)
            logger.info("%s: %s (%d/%d)", self.what, group, len(self.seen), self.total)
