"""Next-token choice: greedy, temperature, top-k and top-p (nucleus, Holtzman et al. 2020).

Every row draws from its own seeded ``torch.Generator``, seeded by (seed, the row's index
in the caller's prompt list). A row's samples therefore do not depend on which other rows
share its batch, on the batch size or on how prompts are split over ranks: batched,
sequential and distributed generation give the same tokens (docs/GENERATION.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token.

    Attributes:
        temperature: 0 = greedy (argmax); otherwise logits are divided by it.
        top_p: Keep the smallest set of most likely tokens whose probability reaches
            ``top_p`` (1.0 = all).
        top_k: Keep the ``top_k`` most likely tokens (0 = all).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.temperature, bool) or not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = no top-k), got {self.top_k!r}")

    @property
    def greedy(self) -> bool:
        """True for temperature 0."""
        return self.temperature == 0


def row_generator(seed: int, index: int) -> torch.Generator:
    """The generator of prompt ``index`` for a given ``seed``.

    The CPU generator keeps only 32 bits of its seed, so the pair is hashed into 32 bits
    (stable across processes, unlike ``hash``) rather than packed into 64.
    """
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


def filtered_probs(logits: torch.Tensor, config: SamplingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities after temperature, top-k and top-p, sorted in decreasing order.

    Args:
        logits: fp32 ``(B, V)``.
        config: A sampling (non-greedy) configuration.

    Returns:
        (probs ``(B, V)`` renormalised, zero outside the kept set; token ids ``(B, V)``).
    """
    sorted_logits, token_ids = torch.sort(logits.float() / config.temperature, dim=-1,
                                          descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)  # (B, V)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if config.top_k > 0:
        keep[:, config.top_k:] = False
    if config.top_p < 1.0:
        # Keep a token when the mass before it is still below top_p (the first always stays).
        mass_before = probs.cumsum(-1) - probs
        keep &= mass_before < config.top_p
    probs = probs * keep
    return probs / probs.sum(-1, keepdim=True), token_ids


def sample(logits: torch.Tensor, config: SamplingConfig,
           generators: Sequence[torch.Generator]) -> torch.Tensor:
    """The next token of every row.

    Args:
        logits: fp32 ``(B, V)``, the last position of each row.
        config: Greedy or sampling settings.
        generators: One per row (unused when greedy).

    Returns:
        Token ids ``(B,)`` long.
    """
    if config.greedy:
        return logits.argmax(-1)
    probs, token_ids = filtered_probs(logits, config)
    # Inverse-CDF draw with each row's own uniform number: reproducible per row.
    uniforms = torch.stack([torch.rand((), generator=g) for g in generators]).to(logits.device)
    cdf = probs.cumsum(-1)
    choice = torch.searchsorted(cdf, uniforms[:, None] * cdf[:, -1:], right=True)
    choice = choice.clamp(max=probs.shape[-1] - 1)  # (B, 1)
    return token_ids.gather(-1, choice).squeeze(-1)
