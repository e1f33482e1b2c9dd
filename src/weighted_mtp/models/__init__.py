"""Meta's multi-token-prediction LLaMA with a value head (Kedro-free).

Public API (see docs/internal/CONTRACTS.md and docs/MODEL.md).
"""

from typing import Any

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter, MTPOutput
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.micro import create_micro_model
from weighted_mtp.models.per_head import backward_per_head

__all__ = [
    "MTPOutput",
    "MetaLlamaMTPAdapter",
    "ModelArgs",
    "backward_per_head",
    "convert_meta_checkpoint",
    "create_micro_model",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m weighted_mtp.models.convert` does not import the
    # module twice (runpy warns when the package already imported it).
    if name == "convert_meta_checkpoint":
        from weighted_mtp.models.convert import convert_meta_checkpoint
        return convert_meta_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
