"""The micro model: default shape, deterministic init, first loss near log(V)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from weighted_mtp.models.adapter import MetaLlamaMTPAdapter
from weighted_mtp.models.checkpoint_io import WEIGHTS_FILE, file_sha256
from weighted_mtp.models.micro import create_micro_model


def test_micro_defaults_and_logged_size(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="weighted_mtp.models"):
        model = create_micro_model(tmp_path / "m", vocab_size=512)
    args = model.args
    assert (args.dim, args.n_layers, args.n_heads, args.kv_heads) == (128, 6, 4, 2)
    assert (args.n_future_tokens, args.max_seq_len, args.ffn_hidden_dim) == (4, 512, 352)
    assert len(model.transformer.layers) == 3 and len(model.transformer.extra_heads) == 3
    n_params = sum(p.numel() for p in model.parameters())
    assert f"{n_params} parameters" in caplog.text
    loaded = MetaLlamaMTPAdapter.from_pretrained(tmp_path / "m")
    assert loaded.model_name == "micro-mtp"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path) -> None:
    small = dict(dim=32, n_layers=4, n_heads=2, n_kv_heads=1, n_future_tokens=2)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        create_micro_model(tmp_path / name, vocab_size=50, seed=seed, **small)
    digest = {name: file_sha256(tmp_path / name / WEIGHTS_FILE) for name in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]


def test_first_loss_of_every_head_is_near_log_vocab(tmp_path: Path) -> None:
    vocab = 1000
    model = create_micro_model(tmp_path / "m", vocab_size=vocab, n_layers=5, dim=64)
    ids = torch.randint(0, vocab, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits  # (B, S, n, V)
    for k in range(model.n_future_tokens):
        offset = k + 1
        loss = F.cross_entropy(logits[:, :-offset, k].reshape(-1, vocab),
                               ids[:, offset:].reshape(-1))
        assert abs(loss.item() - math.log(vocab)) < 0.3, (k, loss.item())


def test_unknown_override_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown micro model settings \['layers'\]"):
        create_micro_model(tmp_path / "m", vocab_size=10, layers=3)
