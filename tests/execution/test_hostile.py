"""A hostile battery: each test is a real program run through `run_tests` the way an
attacker would write it; each asserts the verdict and that the host is unharmed.

See docs/EXECUTION.md for the threat model these tests pin down.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from weighted_mtp.execution import Limits, Status, run_tests

from exec_helpers import host_processes_with

SECRET = "SECRET-7f3a9c1e-expected-output"
ONE_TEST = [("", "ok\n")]


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def _peak_rss_reset() -> None:
    """Reset this process's peak RSS (VmHWM) so the next reading covers one run only."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM missing from /proc/self/status")


# ------------------------------------------------------------- forging the verdict


@pytest.mark.parametrize(
    "forgery",
    [
        # the old harness's success line, written past any redirection, then a hard exit
        'import os, sys\nsys.__stdout__.write(\'\\n{"passed": true, "failed_test": null, "reason": ""}\\n\')\n'
        "sys.__stdout__.flush()\nos._exit(0)\n",
        # a verdict-looking line on stderr and a zero exit
        'import sys\nsys.stderr.write("passed\\n")\nprint("passed")\n',
        # writing to every other fd it might have inherited
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'ok\\n')\n"
        "    except OSError:\n        pass\n",
    ],
)
def test_forged_verdicts_are_wrong_answers(forgery: str) -> None:
    verdict = run_tests(forgery, [("2 3\n", "5\n")])
    assert verdict.status == Status.WRONG_ANSWER and not verdict.passed


# ------------------------------------------------------- reading the expected output


def test_expected_output_cannot_be_read_from_files_proc_or_memory(open_dir: Path) -> None:
    (open_dir / "expected.txt").write_text(SECRET)
    (open_dir / "expected.txt").chmod(0o644)
    program = _src(
        f"""
        import os
        MARK = b"SECRET-"
        found = []
        def look(path):
            try:
                with open(path, "rb") as handle:
                    data = handle.read(1 << 20)
            except OSError:
                return
            if MARK in data:
                found.append(data[data.index(MARK):].split(b"\\0")[0].split(b"\\n")[0])
        for root, dirs, files in os.walk("/"):
            if root == "/" :
                dirs[:] = [d for d in dirs if d not in ("usr", "proc", "dev")]
            for name in files:
                look(os.path.join(root, name))
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                for part in ("cmdline", "environ", "mem"):
                    look(f"/proc/{{pid}}/{{part}}")
        for path in ({str(open_dir / "expected.txt")!r}, "/proc/self/../1/environ"):
            look(path)
        print(found[0].decode() if found else "nothing found")
        """
    )
    verdict = run_tests(program, [("", SECRET + "\n")])
    assert verdict.status == Status.WRONG_ANSWER


def test_environment_secrets_are_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    program = _src(
        """
        import os
        leaked = [k for k, v in os.environ.items() if "SECRET" in v]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    leaked += [pid] if b"SECRET" in open(f"/proc/{pid}/environ", "rb").read() else []
                except OSError:
                    pass
        print("absent" if not leaked else leaked)
        print(sorted(os.environ))
        """
    )
    expected = "absent\n['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']\n"
    assert run_tests(program, [("", expected)]).passed


# ---------------------------------------------------------------------- processes


def test_the_program_sees_only_its_own_pid_namespace() -> None:
    program = 'import os\nprint(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))\n'
    verdict = run_tests(program, [("", "[1, 2]\n")])  # bwrap's init and the program
    assert verdict.passed, verdict


def test_the_program_never_runs_as_root_on_the_host(token: str) -> None:
    program = _src(
        f"""
        import os
        if os.fork() == 0:  # a child the host can find by its argv[0] while it sleeps
            os.execv("/usr/bin/sleep", ["{token}", "1"])
        os.wait()
        print(os.getuid(), os.getgid())
        """
    )
    host_uids: set[int] = set()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_tests, program, [("", "65534 65534\n")])
        while not future.done():
            host_uids |= {_host_uid(pid) for pid in host_processes_with(token)}
        verdict = future.result()
    assert verdict.passed, verdict
    host_uids.discard(None)
    assert host_uids and 0 not in host_uids, host_uids


def _host_uid(pid: int) -> int | None:
    """Real uid of a host process as the host sees it (None if it already exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_a_bounded_fork_bomb_is_contained_and_leaves_no_process(token: str) -> None:
    program = _src(
        f"""
        import os
        started = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    os.execv("/usr/bin/sleep", ["sleep", "{token}"])
                started += 1
        except OSError:
            print("contained")
        else:
            print("not contained", started)
        """
    )
    verdict = run_tests(program, [("", "contained\n")], Limits(processes=16))
    assert verdict.passed, verdict
    assert host_processes_with(token) == []


def _daemon_then(token: str, ending: str) -> str:
    """A program that leaves a ``setsid`` grandchild sleeping (named by ``token``), then runs ``ending``."""
    return _src(
        f"""
        import os
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/usr/bin/sleep", ["sleep", "{token}"])
            os._exit(0)
        os.wait()
        """
    ) + ending


def test_a_setsid_daemon_is_gone_when_run_tests_returns(token: str) -> None:
    program = _daemon_then(token, 'print("ok")\n')
    assert run_tests(program, ONE_TEST).passed
    assert host_processes_with(token) == []


@pytest.mark.parametrize(
    ("ending", "status"),
    [("print('x' * 10**6)\n" * 3, Status.OUTPUT_LIMIT), ("while True:\n    pass\n", Status.TIMEOUT)],
)
def test_a_run_killed_for_its_output_or_clock_leaves_no_daemon(
    token: str, ending: str, status: Status
) -> None:
    program = _daemon_then(token, ending)
    verdict = run_tests(program, ONE_TEST, Limits(time_s=1.0, output_bytes=100_000))
    assert verdict.status == status
    assert host_processes_with(token) == []


def test_killing_the_parent_or_everyone_harms_no_host_process(token: str) -> None:
    bystander = None
    if os.geteuid() == 0:  # a host process of the sandbox's own uid: the easiest victim
        bystander = subprocess.Popen(["sleep", token], user=65534, group=65534, extra_groups=[])
    try:
        program = _src(
            """
            import os, signal
            for target in (os.getppid(), 1, -1):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
            print("ok")
            """
        )
        assert run_tests(program, ONE_TEST).passed
        if bystander is not None:
            assert bystander.poll() is None, "a host process of uid 65534 was killed"
    finally:
        if bystander is not None:
            bystander.kill()
            bystander.wait()


# ---------------------------------------------------------------------- resources


def test_a_memory_bomb_is_classified_as_memory() -> None:
    program = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"
    verdict = run_tests(program, ONE_TEST, Limits(memory_mb=256))
    assert verdict.status == Status.MEMORY, verdict


def test_an_infinite_loop_is_classified_as_timeout() -> None:
    verdict = run_tests("while True:\n    pass\n", ONE_TEST, Limits(time_s=1.0))
    assert verdict.status == Status.TIMEOUT and verdict.failed_test == 0


def test_sleeping_forever_is_stopped_by_the_wall_clock() -> None:
    verdict = run_tests("import time\ntime.sleep(3600)\n", ONE_TEST, Limits(time_s=0.5))
    assert verdict.status == Status.TIMEOUT


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_gigabyte_of_output_keeps_the_parent_flat(stream: str) -> None:
    program = f"import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    sys.{stream}.buffer.write(chunk)\n"
    _peak_rss_reset()
    before = _peak_rss_mb()
    verdict = run_tests(program, ONE_TEST, Limits(output_bytes=1_000_000))
    assert verdict.status == Status.OUTPUT_LIMIT
    assert _peak_rss_mb() - before < 50


# ------------------------------------------------------------- filesystem, network


def test_files_outside_the_working_directory_are_untouched(open_dir: Path) -> None:
    victim = open_dir / "victim.txt"  # world-writable: only the sandbox keeps it safe
    victim.write_text("original")
    victim.chmod(0o666)
    project_file = Path(__file__).resolve()
    before = project_file.read_bytes()
    program = _src(
        f"""
        import os
        for path in ({str(victim)!r}, {str(project_file)!r}, "/usr/bin/python3", "/tmp/planted",
                     "/usr/planted", "/etc/planted"):
            for action in (lambda: open(path, "w").write("pwned"), lambda: os.remove(path)):
                try:
                    action()
                except OSError:
                    pass
        open("scratch.txt", "w").write("fine")
        print(open("scratch.txt").read(), os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"])
        """
    )
    verdict = run_tests(program, [("", "fine True\n")])
    assert verdict.passed, verdict
    assert victim.read_text() == "original"
    assert sorted(p.name for p in open_dir.iterdir()) == ["victim.txt"]
    assert project_file.read_bytes() == before
    assert not Path("/tmp/planted").exists() and not Path("/usr/planted").exists()


def test_the_working_directory_is_fresh_for_every_test() -> None:
    program = _src(
        """
        import os
        print(os.listdir("."))
        open("left-behind", "w").write("x")
        """
    )
    assert run_tests(program, [("", "[]\n"), ("", "[]\n")]).passed


def test_no_connection_reaches_a_host_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        program = _src(
            f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
                print("connected")
            except OSError:
                print("refused")
            """
        )
        verdict = run_tests(program, [("", "refused\n")])
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing queued: no connection ever arrived
    assert verdict.passed, verdict
