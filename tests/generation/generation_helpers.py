"""Small seeded MTP models for the generation tests (imported by name, like model_helpers).

Random models are scaled up (weights × 3) so their greedy choices have clear margins: the
tests compare tokens across code paths whose float sums differ at the 1e-7 level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.args import ModelArgs
from weighted_mtp.models.transformer import init_weights

SMALL = {"dim": 64, "n_layers": 6, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 300,
         "multiple_of": 16, "n_future_tokens": 4, "max_seq_len": 96}


def build_model(seed: int = 0, scale: float = 3.0, **overrides: object) -> MetaLlamaMTPAdapter:
    """A seeded random model: 3 trunk blocks + 4 heads, GQA 4 → 2, vocab 300."""
    args = ModelArgs(**{**SMALL, **overrides})
    model = MetaLlamaMTPAdapter(args)
    generator = torch.Generator().manual_seed(seed)
    init_weights(model.transformer, n_path_blocks=args.n_layer_blocks, generator=generator)
    init_weights(model.value_head, n_path_blocks=1, generator=generator)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)
    return model.eval()


def random_prompts(lengths: Sequence[int], vocab_size: int = 300, seed: int = 1) -> list[list[int]]:
    """Random token-id prompts of the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (n,), generator=generator).tolist() for n in lengths]


def train_mtp(model: MetaLlamaMTPAdapter, sequences: Sequence[Sequence[int]], steps: int,
              lr: float = 3e-3) -> MetaLlamaMTPAdapter:
    """Fit every head to ``sequences`` (head k predicts token t + k + 1), full batch, Adam."""
    ids = torch.tensor(sequences)  # (B, S), equal lengths
    optimizer = torch.optim.Adam(model.transformer.parameters(), lr=lr)
    n_heads = model.n_future_tokens
    model.train()
    for _ in range(steps):
        logits = model(ids).logits  # (B, S, n, V)
        loss = sum(torch.nn.functional.cross_entropy(
            logits[:, :ids.shape[1] - k - 1, k].flatten(0, 1), ids[:, k + 1:].flatten())
            for k in range(n_heads)) / n_heads
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def greedy_by_recompute(model: MetaLlamaMTPAdapter, prompt: Sequence[int], n_new: int
                        ) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy head-0 decoding by the training forward over the whole sequence each step.

    Returns:
        (new tokens, the logits ``(V,)`` each step chose from).
    """
    ids, steps = list(prompt), []
    with torch.no_grad():
        for _ in range(n_new):
            logits = model.head_logits(model.trunk_forward(torch.tensor([ids])), 0)[0, -1]
            steps.append(logits)
            ids.append(int(logits.argmax()))
    return ids[len(prompt):], steps
