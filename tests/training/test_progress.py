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


def test_without_a_terminal_a_line_every_twentieth_with_rate_and_eta(monkeypatch, caplog):
    import logging

    from weighted_mtp.training.progress import LogProgress, format_duration, progress

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    caplog.set_level(logging.INFO, logger="weighted_mtp.progress")
    with progress(total=200, initial=40, desc="Stage 2") as bar:  # fast work: the last line alone
        assert isinstance(bar, LogProgress)
        bar.update(160)
    assert [r.getMessage()[:28] for r in caplog.records] == ["[Stage 2] 200/200 steps (100"]
    caplog.clear()
    bar = LogProgress(total=200, initial=40, desc="Stage 2", min_interval=0.0)  # a resume at step 40
    for _ in range(160):
        bar.update(1)
        bar.set_postfix(loss="1.2345")
    lines = [r.getMessage() for r in caplog.records if r.name == "weighted_mtp.progress"]
    assert len(lines) == 20 and lines[-1].startswith("[Stage 2] 200/200 steps (100%), ")
    assert lines[0].startswith("[Stage 2] 48/200 steps (24%), ") and " s/step, ETA " in lines[0]
    assert lines[0].endswith(", loss 1.2345")
    assert [format_duration(s) for s in (7, 211, 7500, float("nan"))] == ["7 s", "3 min 31 s", "2 h 05 min", "?"]


def test_a_drawn_bar_routes_log_records_through_tqdm(monkeypatch):
    import logging

    from tqdm.contrib import logging as tqdm_logging

    from weighted_mtp.training.progress import progress

    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with progress(total=2, desc="x", enabled=True) as bar:
            inside = [h for h in root.handlers if isinstance(h, tqdm_logging._TqdmLoggingHandler)]
            bar.update(2)
        assert inside and handler not in inside
        assert handler in root.handlers  # restored afterwards
    finally:
        root.removeHandler(handler)
