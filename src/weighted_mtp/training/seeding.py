"""Seeding and RNG-state capture, so a seed fixes a run and a checkpoint resumes it exactly."""

from __future__ import annotations

import random
from typing import Any

import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random`` and torch (CPU and every CUDA device).

    The data order does not depend on these global generators: it comes from a generator
    seeded per epoch (see :class:`~weighted_mtp.training.sampler.ResumableSampler`), so
    resuming mid-epoch reproduces it without replaying the global streams.

    Args:
        seed: ``training.seed``.
    """
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state() -> dict[str, Any]:
    """Return the global RNG states (Python, torch CPU, CUDA when available)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state`.

    CUDA states are restored only when the machine has the same number of devices; a
    checkpoint moved from a GPU machine to a CPU one still resumes (CUDA streams unused).
    """
    python_state = state["python"]
    # torch.load(weights_only=True) returns lists where random.getstate() gave tuples.
    version, internal, gauss = python_state
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
