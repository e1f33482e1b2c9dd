"""Best-metric tracking: improvement, patience, early stopping, best-checkpoint hook."""

from __future__ import annotations

import logging
import math

import pytest

from weighted_mtp.training.best_tracker import BestTracker


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
