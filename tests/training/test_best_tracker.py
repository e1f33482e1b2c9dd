"""Best-metric tracking: improvement, patience, early stopping, best-checkpoint hook."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from weighted_mtp.training.best_tracker import BestTracker
from weighted_mtp.training.checkpoint import save_checkpoint
from weighted_mtp.training.loop import handle_evaluation


def test_improvement_only_on_strictly_lower_finite_values():
    tracker = BestTracker("val_loss", patience=0)
    seen = [tracker.update({"val_loss": v}, step) for step, v in enumerate([3.0, 2.0, 2.0, math.nan, 1.0])]
    assert seen == [True, True, False, False, True]
    assert (tracker.best, tracker.best_step, tracker.bad_evaluations) == (1.0, 4, 0)


def test_patience_warns_and_early_stopping_sets_flag(caplog):
    caplog.set_level(logging.WARNING)
    tracker = BestTracker("val_loss", patience=2, early_stopping=True)
    for step, value in enumerate([1.0, 1.5, 1.2]):
        tracker.update({"val_loss": value}, step)
    assert tracker.should_stop
    assert "val_loss has not improved for 2 evaluation(s)" in caplog.text
    warn_only = BestTracker("val_loss", patience=1, early_stopping=False)
    warn_only.update({"val_loss": 1.0}, 0)
    warn_only.update({"val_loss": 2.0}, 1)
    assert not warn_only.should_stop


def test_unknown_monitor_is_a_clear_error():
    with pytest.raises(KeyError, match="'val_acc' not among evaluation metrics"):
        BestTracker("val_acc").update({"val_loss": 1.0}, 0)


def test_state_round_trip():
    tracker = BestTracker("val_loss", patience=3)
    tracker.update({"val_loss": 1.0}, 5)
    tracker.update({"val_loss": 2.0}, 6)
    restored = BestTracker("val_loss", patience=3)
    restored.load_state_dict(tracker.state_dict())
    assert restored.state_dict() == tracker.state_dict()


def test_best_checkpoint_written_only_on_improvement(tmp_path):
    """A fake metric sequence through the tracker and the loop's evaluation hook."""
    tracker = BestTracker("val_loss", patience=0)
    path = tmp_path / "checkpoint_stage2_best.pt"
    writes: list[int] = []
    sequence = [3.0, 2.0, 2.5, 1.0, math.nan, 1.5]
    for step, value in enumerate(sequence, start=1):

        def save_best(step=step, value=value):
            writes.append(step)
            return save_checkpoint(path, {"global_step": step, "val_loss": value})

        result = handle_evaluation({"val_loss": value}, step, tracker, save_best)
        assert (result == path) == (step in (1, 2, 4))
    assert writes == [1, 2, 4]
    saved = torch.load(path, weights_only=True)
    assert saved == {"global_step": 4, "val_loss": 1.0}
