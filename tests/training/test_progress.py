"""When the progress bar is drawn."""

from __future__ import annotations

from weighted_mtp.training.progress import PROGRESS_ENV, make_progress, progress_enabled


def test_progress_only_on_main_rank_and_when_asked(monkeypatch):
    assert not progress_enabled(is_main=False, enabled=True)
    assert progress_enabled(is_main=True, enabled=True)
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert not progress_enabled(is_main=True)
    monkeypatch.delenv(PROGRESS_ENV)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled(is_main=True)


def test_not_drawn_without_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not progress_enabled(is_main=True)  # pytest captures stderr: not a TTY
    bar = make_progress(total=3, desc="Stage 2")
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""
