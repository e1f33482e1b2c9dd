"""``MetaLlamaMTPAdapter``: Meta's MTP transformer plus a value head, loadable and savable.

The adapter exposes the pieces the training loop needs separately (trunk, one head at a
time, values from the trunk) so the per-head loss path (``per_head.py``) and a frozen-trunk
value-head stage can run without materialising all n heads' logits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open
from torch import nn

from weighted_mtp.models import checkpoint_io as ckpt
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.transformer import MTPTransformer, init_weights
from weighted_mtp.models.value_head import ValueHead
from weighted_mtp.runtime.device import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "meta-llama-mtp"


@dataclass
class MTPOutput:
    """Model outputs.

    Attributes:
        logits: fp32 ``(B, S, n, V)``; head k at position t scores token t + k + 1. None
            when ``return_logits=False``.
        values: fp32 ``(B, S)``; V_t, the estimated probability of a correct program.
    """

    logits: torch.Tensor | None
    values: torch.Tensor


class MetaLlamaMTPAdapter(nn.Module):
    """Meta's MTP LLaMA (``.transformer``) and a critic on ``norm(z)`` (``.value_head``).

    Args:
        args: The architecture.
        value_head: ``"linear"``, ``"mlp"`` or ``"block"``.
    """

    def __init__(self, args: ModelArgs, value_head: str = "linear") -> None:
        super().__init__()
        self.args = args
        self.model_name = DEFAULT_MODEL_NAME
        self.transformer = MTPTransformer(args)
        self.value_head = ValueHead(args, value_head)

    @property
    def n_future_tokens(self) -> int:
        """Number of prediction heads n."""
        return self.args.n_future_tokens

    def trunk_forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embeddings + ``layers[:-1]``: ``(B, S)`` → z ``(B, S, D)``."""
        return self.transformer.trunk(input_ids)

    def values_from_trunk(self, z: torch.Tensor) -> torch.Tensor:
        """``value_head(norm(z))`` (a ``block`` head reads z itself): z ``(B, S, D)`` → fp32 ``(B, S)``."""
        if self.value_head.reads_trunk:
            return self.value_head(z, self.transformer.rope(z.shape[1]))
        return self.value_head(self.transformer.norm(z))

    def head_logits(self, z: torch.Tensor, head_index: int) -> torch.Tensor:
        """One head (0..n-1): block, norm, output. z ``(B, S, D)`` → fp32 ``(B, S, V)``."""
        return self.transformer.head_logits(z, head_index)

    def forward(self, input_ids: torch.Tensor, return_logits: bool = True) -> MTPOutput:
        """Trunk once, values, and (optionally) all n heads.

        Args:
            input_ids: ``(B, S)`` token ids.
            return_logits: False skips the heads (value-only stage, evaluation of V).
        """
        z = self.trunk_forward(input_ids)
        values = self.values_from_trunk(z)
        if not return_logits:
            return MTPOutput(logits=None, values=values)
        heads = [self.head_logits(z, k) for k in range(self.n_future_tokens)]
        return MTPOutput(logits=torch.stack(heads, dim=2), values=values)  # (B, S, n, V)

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Embeddings and shared trunk blocks (frozen in stage 1)."""
        return self.transformer.trunk_parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The n head blocks and the shared ``norm`` and ``output``."""
        return self.transformer.head_parameters()

    def value_head_parameters(self) -> Iterator[nn.Parameter]:
        """The value head only."""
        return self.value_head.parameters()

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype | None = None,
                        value_head: str | None = None,
                        fresh_value_head: bool = False) -> "MetaLlamaMTPAdapter":
        """Load a model directory strictly (Meta key names, every shape checked).

        The model is built on the meta device and the file's tensors are assigned in, so a
        7B checkpoint is never held twice. ``value_head.*`` keys are optional: when absent
        the value head is freshly initialised (and a log line says so).

        Args:
            model_dir: Directory in the layout of ``checkpoint_io``.
            device: ``auto | cpu | cuda | cuda:N`` or a ``torch.device``.
            dtype: None (float32), ``"float32"``/``"bfloat16"`` (checked against the
                device by ``resolve_dtype``) or a ``torch.dtype`` used as given.
            value_head: Kind of value head to build; must match the file's if it has one.
                None: the file's kind (``linear`` when the file has no value head).
            fresh_value_head: Ignore the file's value head and initialise a new one (for a
                generated micro model, whose value head was never trained).

        Raises:
            FileNotFoundError: Directory, params or weights missing.
            ValueError: Keys or shapes differ from the params, or the value head kind does;
                the weights file is truncated or corrupt, or differs from the size or sha256
                recorded in ``metadata.json`` (``checkpoint_io.verify_weights``).
        """
        model_dir = Path(model_dir)
        device = resolve_device(device)
        dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
        args = ckpt.read_model_args(model_dir)
        path = ckpt.weights_path(model_dir)
        file_kind = _check_file(path, args, None if fresh_value_head else value_head)
        ckpt.verify_weights(model_dir)  # after the header check: a key or shape error says more
        kind = value_head or (None if fresh_value_head else file_kind) or "linear"
        with torch.device("meta"):
            adapter = cls(args, value_head=kind)
        _assign_weights(adapter, path, device, dtype,
                        has_value_head=file_kind is not None and not fresh_value_head)
        adapter.model_name = ckpt.read_metadata(model_dir).get("model_name", DEFAULT_MODEL_NAME)
        logger.info("loaded %s from %s (%d parameters, %s, %s)", adapter.model_name, model_dir,
                    sum(p.numel() for p in adapter.parameters()), dtype, device)
        return adapter

    def save_pretrained(self, model_dir: str | Path, model_name: str | None = None) -> Path:
        """Write the model directory (temp dir + rename; an existing ``tokenizer/`` is kept).

        Args:
            model_dir: Target directory; replaced only once the new one is complete.
            model_name: Stored in ``metadata.json``; defaults to ``self.model_name``.

        Returns:
            The directory written.
        """
        tensors = {ckpt.file_key(key): value.detach().cpu()
                   for key, value in self.state_dict().items()}
        if any(t.is_meta for t in tensors.values()):
            raise ValueError("cannot save a model whose weights are on the meta device")
        return ckpt.write_model_dir(Path(model_dir), tensors, self.args,
                                    model_name or self.model_name)


def _check_file(path: Path, args: ModelArgs, value_head: str | None) -> str | None:
    """Strictly compare the file's keys and shapes to ``args``; return its value head kind
    (``value_head`` None: any kind is accepted)."""
    found = ckpt.safetensors_shapes(path)
    file_kind = ckpt.detect_value_head_kind(found)
    if value_head is not None and file_kind is not None and file_kind != value_head:
        raise ValueError(f"{path} holds a {file_kind!r} value head but value_head="
                         f"{value_head!r} was asked; set models.policy.value_head to "
                         f"{file_kind!r}")
    ckpt.check_shapes(found, ckpt.expected_file_shapes(args, file_kind), str(path),
                      hint="The weights do not belong to these params (metadata.json / "
                           "configs/params.json); re-convert or fix the params.")
    return file_kind


def _assign_weights(adapter: MetaLlamaMTPAdapter, path: Path, device: torch.device,
                    dtype: torch.dtype, has_value_head: bool) -> None:
    """Read tensors one by one onto ``device`` in ``dtype`` and assign them to the
    meta-device adapter; initialise the value head when the file has none."""
    transformer_state: dict[str, torch.Tensor] = {}
    value_state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        for key in handle.keys():
            tensor = handle.get_tensor(key).to(dtype)
            if key.startswith(ckpt.VALUE_HEAD_PREFIX):
                if not has_value_head:
                    continue
                value_state[key[len(ckpt.VALUE_HEAD_PREFIX):]] = tensor
            else:
                transformer_state[key] = tensor
    adapter.transformer.load_state_dict(transformer_state, strict=True, assign=True)
    adapter.transformer.refresh_rope_buffer()
    if has_value_head:
        adapter.value_head.load_state_dict(value_state, strict=True, assign=True)
    else:
        adapter.value_head.to_empty(device=device)
        adapter.value_head.to(dtype)
        init_value_head(adapter)
        logger.info("%s has no value_head.* keys: value head (%s) initialised fresh",
                    path, adapter.value_head.kind)


def init_value_head(adapter: MetaLlamaMTPAdapter, generator: torch.Generator | None = None) -> None:
    """A fresh value head: random (N(0, 0.02), zero bias) for ``linear``/``mlp``; for
    ``block``, a copy of head 0's block and the shared norm with a random projection, so the
    critic starts from features that already model the code (as the MTP paper starts
    added heads from the last block)."""
    head = adapter.value_head
    init_weights(head, n_path_blocks=1, generator=generator)
    if head.kind == "block":
        with torch.no_grad():
            head.block.load_state_dict(adapter.transformer.layers[-1].state_dict())
            head.norm.load_state_dict(adapter.transformer.norm.state_dict())
