"""Token weights from a value head: TD errors, GAE, whitened exponential weights (docs/METHOD.md).

Kedro-free and model-free: every function takes tensors and returns tensors (or, for the
logging summaries, Python floats). See ``docs/METHOD.md`` for the method in words.
"""

from .ema import TDStatsEMA
from .gae import compute_gae_advantages
from .td import compute_td_errors
from .weights import build_weights

__all__ = [
    "TDStatsEMA",
    "build_weights",
    "compute_gae_advantages",
    "compute_td_errors",
]
