"""Model hyper-parameters in the shape of Meta's ``params.json``.

The field names and defaults are Meta's (``llama/model.py`` ``ModelArgs`` plus the MTP
release's ``n_future_tokens``), so a ``params.json`` shipped with a checkpoint fills this
dataclass without renaming.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

logger = logging.getLogger(__name__)

# A dict must carry these to be taken for a params.json; without them, ignoring unknown
# keys would silently turn a wrong file (a tokenizer config, say) into the 7B defaults.
_CORE_KEYS = ("dim", "n_layers", "n_heads")
_INT_FIELDS = ("dim", "n_layers", "n_heads", "vocab_size", "multiple_of", "max_seq_len",
               "n_future_tokens")
_FLOAT_FIELDS = ("norm_eps", "rope_theta")
# Keys of Meta's params.json that ModelArgs does not hold. A key that changes what the
# weights compute must never be dropped: it is accepted only with its "off" value here.
# Only ``max_batch_size`` (the size of Meta's inference KV cache) is ignored whatever it is.
_IGNORED_KEYS = ("max_batch_size",)
_INERT_VALUES: dict[str, Any] = {
    "use_scaled_rope": False,   # Llama 3.1's long-context RoPE frequency scaling
    "rope_scaling": None,       # the same, in Hugging Face's spelling
}


@dataclass(frozen=True)
class ModelArgs:
    """Architecture of Meta's multi-token-prediction LLaMA.

    Attributes:
        dim: Model width D.
        n_layers: Total transformer blocks, trunk plus all heads. ``layers`` holds
            ``n_layers - n_future_tokens + 1`` of them, ``extra_heads`` the rest.
        n_heads: Query heads per attention.
        n_kv_heads: Key/value heads (grouped-query attention); None means ``n_heads``.
        vocab_size: Vocabulary size V; -1 (Meta's default) means "take it from the
            tokenizer or the checkpoint" and must be resolved before building a model.
        multiple_of: The SwiGLU hidden width is rounded up to a multiple of this.
        ffn_dim_multiplier: Optional extra factor on the SwiGLU hidden width.
        norm_eps: RMSNorm epsilon.
        rope_theta: RoPE base.
        max_seq_len: Longest sequence the model is used with; RoPE tables cover twice
            this, as in Meta's reference.
        n_future_tokens: Number of prediction heads n (head k predicts token t + k + 1).
    """

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None
    vocab_size: int = -1
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    n_future_tokens: int = 1

    def __post_init__(self) -> None:
        self._check_types()
        self._check_values()

    def _check_types(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ModelArgs.{name} must be an int, found {value!r}")
        if self.n_kv_heads is not None and (
            isinstance(self.n_kv_heads, bool) or not isinstance(self.n_kv_heads, int)
        ):
            raise ValueError(f"ModelArgs.n_kv_heads must be an int or None, found "
                             f"{self.n_kv_heads!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"ModelArgs.{name} must be a number, found {value!r}")
        multiplier = self.ffn_dim_multiplier
        if multiplier is not None and (isinstance(multiplier, bool)
                                       or not isinstance(multiplier, (int, float))):
            raise ValueError(f"ModelArgs.ffn_dim_multiplier must be a number or None, "
                             f"found {multiplier!r}")

    def _check_values(self) -> None:
        checks = (
            (self.dim > 0, "dim must be > 0"),
            (self.n_heads > 0, "n_heads must be > 0"),
            (self.dim % self.n_heads == 0,
             f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})"),
            ((self.dim // self.n_heads) % 2 == 0,
             f"head_dim = dim / n_heads = {self.dim // self.n_heads} must be even for RoPE"),
            (self.kv_heads > 0 and self.n_heads % self.kv_heads == 0,
             f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.kv_heads})"),
            (self.n_future_tokens >= 1, "n_future_tokens must be >= 1"),
            (self.n_layers >= self.n_future_tokens,
             f"n_layers ({self.n_layers}) must be >= n_future_tokens "
             f"({self.n_future_tokens}): every head needs its own block"),
            (self.vocab_size > 0 or self.vocab_size == -1,
             f"vocab_size must be > 0 (or -1 = unknown), found {self.vocab_size}"),
            (self.multiple_of > 0, "multiple_of must be > 0"),
            (self.max_seq_len > 0, "max_seq_len must be > 0"),
            (self.norm_eps > 0, "norm_eps must be > 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid ModelArgs: {message}")

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads after applying the ``None = n_heads`` default."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.dim // self.n_heads

    @property
    def n_layer_blocks(self) -> int:
        """Blocks in ``layers``: the shared trunk plus head 0 (Meta's layout)."""
        return self.n_layers - self.n_future_tokens + 1

    @property
    def ffn_hidden_dim(self) -> int:
        """SwiGLU hidden width with Meta's formula (11008 for dim 4096, multiple_of 256)."""
        hidden = 4 * self.dim
        hidden = int(2 * hidden / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def to_dict(self) -> dict[str, Any]:
        """All fields, None included (the form stored in ``metadata.json``)."""
        return asdict(self)

    def to_meta_params(self) -> dict[str, Any]:
        """Fields without None values, the way Meta writes ``params.json``."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def replace(self, **changes: Any) -> "ModelArgs":
        """A copy with some fields changed (validated like a new instance)."""
        return ModelArgs(**{**asdict(self), **changes})

    @classmethod
    def from_dict(cls, params: Mapping[str, Any], source: str = "params") -> "ModelArgs":
        """Build from a ``params.json``-style dict.

        Meta's ``max_batch_size`` (an inference setting) is ignored with a log line, and
        ``use_scaled_rope: false`` / ``rope_scaling: null`` (off) are accepted; any other
        key this class does not know is refused, because a setting we do not implement
        (``use_scaled_rope: true``, say) would silently give a model that computes something
        else than the checkpoint's.

        Args:
            params: The parsed dict.
            source: Where it came from, for error messages (a file path).

        Raises:
            ValueError: Core keys missing, a key not implemented, or a value of the wrong
                type or range.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"{source}: expected a JSON object of model params, found "
                             f"{type(params).__name__}")
        missing = [key for key in _CORE_KEYS if key not in params]
        if missing:
            raise ValueError(f"{source}: not a Meta params.json, missing {missing}; "
                             f"found keys {sorted(params)}")
        known = {f.name for f in fields(cls)}
        _refuse_unimplemented(params, known, source)
        ignored = sorted(set(params) - known)
        if ignored:
            logger.info("%s: ignoring keys not used by ModelArgs: %s", source, ignored)
        try:
            return cls(**{key: value for key, value in params.items() if key in known})
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error


def _refuse_unimplemented(params: Mapping[str, Any], known: set[str], source: str) -> None:
    """Every unknown key must be ignorable (``_IGNORED_KEYS``) or off (``_INERT_VALUES``)."""
    problems = []
    for key in sorted(set(params) - known - set(_IGNORED_KEYS)):
        if key in _INERT_VALUES and params[key] == _INERT_VALUES[key]:
            continue
        if key in _INERT_VALUES:
            problems.append(f"{key}: {params[key]!r} is not implemented (only "
                            f"{_INERT_VALUES[key]!r} is supported)")
        else:
            problems.append(f"{key}: unknown key, not a ModelArgs field")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems) + "; refused so that the model "
                         "cannot silently differ from the checkpoint's (supported keys: "
                         f"{sorted(known)}, and {list(_IGNORED_KEYS)}, ignored)")
