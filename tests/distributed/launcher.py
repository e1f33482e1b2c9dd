"""``torchrun ... tests/distributed/launcher.py [kedro run options]``: the project's run
command (as ``python -m weighted_mtp``) with two test-only instruments, set by variables:

- ``WMTP_TEST_OUT``: each rank writes ``rank{r}.json`` there at exit: every path under the
  working directory (the project) it opened for writing, created, renamed or removed,
  seen through Python's audit hooks, and a digest of the stage-2 model it ended with;
- ``WMTP_TEST_FAIL_RANK`` (with ``WMTP_TEST_FAIL_STEP``, default 1): that rank raises
  ``RuntimeError("injected failure ...")`` in its training step of that global step.

Nothing here changes what the project does; it only watches, or breaks one rank.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

RANK = int(os.environ.get("RANK", "0"))
ROOT = Path.cwd().resolve()
# Audit event -> index of its dir_fd argument (a path relative to a dir_fd is skipped: it
# cannot be placed; shutil.rmtree's own event already names the tree it removes).
WRITE_EVENTS = {"os.rename": 2, "os.mkdir": 2, "os.remove": 1, "os.rmdir": 1, "os.symlink": 2,
                "shutil.rmtree": 1}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
observed: dict[str, Any] = {"rank": RANK, "writes": [], "stage2_digest": None}


def _inside_project(path: Any) -> str | None:
    try:
        resolved = Path(os.fsdecode(path)).resolve()
    except (TypeError, ValueError, OSError):
        return None
    return str(resolved) if resolved.is_relative_to(ROOT) else None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writes and isinstance(path, (str, bytes, os.PathLike)):
            inside = _inside_project(path)
            if inside:
                observed["writes"].append(f"open {inside}")
    elif event in WRITE_EVENTS and args:
        dir_fd = args[WRITE_EVENTS[event]] if len(args) > WRITE_EVENTS[event] else None
        if dir_fd is not None and event != "shutil.rmtree":
            return
        inside = _inside_project(args[0])
        if inside:
            observed["writes"].append(f"{event} {inside}")


def _digest(model: Any) -> str:
    sha = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        sha.update(key.encode())
        sha.update(value.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _watch_stage2() -> None:
    """Record the digest of the model stage 2 ends with on this rank (what the train_stage2
    node returns)."""
    from weighted_mtp.training.trainer import Trainer

    original = Trainer.cleanup

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if result.stage == "stage2":
            observed["stage2_digest"] = _digest(result.model)
        return result

    Trainer.cleanup = watched


def _fail_on_rank(fail_rank: int, fail_step: int) -> None:
    from weighted_mtp.training import trainer

    original = trainer.train_step

    def failing(*args: Any, **kwargs: Any) -> Any:
        if RANK == fail_rank and kwargs.get("step") == fail_step:
            raise RuntimeError(f"injected failure on rank {RANK} at step {fail_step}")
        return original(*args, **kwargs)

    trainer.train_step = failing


def _write_observed(out: Path) -> None:
    (out / f"rank{RANK}.json").write_text(json.dumps(observed, indent=1))


def main() -> None:
    out = os.environ.get("WMTP_TEST_OUT")
    if out:
        _watch_stage2()
        atexit.register(_write_observed, Path(out))
        sys.addaudithook(_audit)
    if os.environ.get("WMTP_TEST_FAIL_RANK"):
        _fail_on_rank(int(os.environ["WMTP_TEST_FAIL_RANK"]), int(os.environ.get("WMTP_TEST_FAIL_STEP", "1")))
    from weighted_mtp.__main__ import main as run

    run()


if __name__ == "__main__":
    main()
