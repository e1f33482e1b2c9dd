"""Checkpoint files: atomic writes, validated reads, config diffs, RNG round trip."""

from __future__ import annotations

import random

import pytest
import torch

from weighted_mtp.training import checkpoint as ckpt
from weighted_mtp.training.seeding import capture_rng_state, restore_rng_state


def _payload(value: float) -> dict:
    return {
        "format_version": ckpt.FORMAT_VERSION, "stage": "stage2", "epoch": 1, "batch_in_epoch": 2,
        "global_step": 7, "model": {"w": torch.full((3,), value)}, "optimizer": {}, "scheduler": {},
        "rng": capture_rng_state(), "best": {"monitor": "val_loss", "best": value},
        "config": {"training": {"seed": 1}}, "metrics": {"val_loss": value}, "history": [],
    }


def test_round_trip(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "sub" / "checkpoint_stage2_best.pt", _payload(1.5))
    loaded = ckpt.load_checkpoint(path)
    assert loaded["global_step"] == 7 and loaded["metrics"] == {"val_loss": 1.5}
    torch.testing.assert_close(loaded["model"]["w"], torch.full((3,), 1.5))
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_crash_mid_write_leaves_previous_file_and_no_temp_file(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint(tmp_path / "checkpoint_stage2_best.pt", _payload(1.0))

    def crashing_save(obj, handle, *args, **kwargs):
        handle.write(b"partial garbage")  # some bytes reach the disk before the crash
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, _payload(2.0))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "temporary file left behind"
    assert ckpt.load_checkpoint(path)["metrics"]["val_loss"] == 1.0


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing keys"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    old = _payload(1.0) | {"format_version": 99}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="format_version 99"):
        ckpt.load_checkpoint(tmp_path / "old.pt")


def test_checkpoint_names():
    assert ckpt.checkpoint_path("d", "stage1", "best").name == "checkpoint_stage1_best.pt"
    assert ckpt.checkpoint_path("d", "stage2", 3).name == "checkpoint_stage2_epoch_3.pt"
    assert ckpt.checkpoint_path("d", "stage2", "final").name == "checkpoint_stage2_final.pt"


def test_config_changes_lists_changed_added_and_removed_keys():
    saved = {"training": {"seed": 1, "stage2": {"beta": 0.9, "old": 1}}, "project": {"name": "x"}}
    current = {"training": {"seed": 1, "stage2": {"beta": 1.2, "new": 2}}, "project": {"name": "x"}}
    assert ckpt.config_changes(saved, current) == [
        "training.stage2.beta: 0.9 -> 1.2",
        "training.stage2.new: <absent> -> 2",
        "training.stage2.old: 1 -> <absent>",
    ]


def test_config_to_dict_handles_run_config(make_config):
    plain = ckpt.config_to_dict(make_config())
    assert plain["training"]["stage2"]["td_ema"]["momentum"] == 0.99
    assert ckpt.config_changes(plain, ckpt.config_to_dict(make_config())) == []


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(3)
    torch.manual_seed(3)
    path = ckpt.save_checkpoint(tmp_path / "c.pt", _payload(0.0))
    expected = (random.random(), torch.rand(2))
    restore_rng_state(ckpt.load_checkpoint(path)["rng"])
    assert random.random() == expected[0]
    torch.testing.assert_close(torch.rand(2), expected[1])


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],   # an interrupted copy
    lambda data: data[:-100],              # the end (zip directory) missing
    lambda data: b"",                      # a full disk
    lambda data: b"\0" * len(data),        # overwritten
])
def test_truncated_or_corrupt_file_is_named_with_what_to_do(tmp_path, damage):
    path = ckpt.save_checkpoint(tmp_path / "checkpoint_stage2_step_4.pt", _payload(1.0))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError) as error:
        ckpt.load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: truncated or corrupt checkpoint ({path.stat().st_size} bytes; torch.load: ")
    assert message.endswith("Delete it and resume from another checkpoint of the run (training.resume_from), "
                            "or start the stage again.")
    assert "\n" not in message


def test_an_intact_file_torch_refuses_keeps_torch_error(tmp_path):
    import argparse
    import pickle

    torch.save({"config": argparse.Namespace(seed=1)}, tmp_path / "foreign.pt")  # not weights_only-safe
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")
