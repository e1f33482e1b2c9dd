"""The process group under ``torchrun``: who this process is, collectives, start and stop.

``torchrun --nproc_per_node N`` starts N copies of the whole program and tells each who it
is through the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), before Python starts. Every rank runs every Kedro node; this module lets
the code ask "am I rank 0?" (also before the process group exists, e.g. in ``settings.py``),
join the group, reduce figures over ranks, and leave the group cleanly or, after an error,
without waiting for the others.

Without torchrun (no ``WORLD_SIZE``, or 1) every helper is the single-process identity, so
the one-process path pays nothing.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nccl", "gloo")
# Loggers that rank > 0 turns down to WARNING: rank 0 alone speaks for the run.
QUIET_LOGGERS = ("weighted_mtp", "kedro", "kedro_mlflow", "mlflow", "py.warnings")

_local_only = False  # set by rank_local(): statistics of this rank's own data


def _env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    value = str(env.get(name, "")).strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Environment variable {name}={value!r} is not an integer; torchrun "
                         "sets it to one (unset it for a single-process run).") from None


def get_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank: the process group's when it exists, else ``RANK`` (0)."""
    if env is None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0, env)


def get_world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of ranks: the process group's when it exists, else ``WORLD_SIZE`` (1)."""
    if env is None and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1, env)


def get_local_rank(env: Mapping[str, str] | None = None) -> int:
    """Rank within this machine (``LOCAL_RANK``, 0 without torchrun): the GPU index to use."""
    return _env_int("LOCAL_RANK", 0, env)


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True on rank 0 and in a single process: the one rank that writes files, logs to
    the console and talks to MLflow."""
    return get_rank(env) == 0


def launched_distributed(env: Mapping[str, str] | None = None) -> bool:
    """True when torchrun started more than one rank (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1, env) > 1


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised (and the caller is
    not inside :func:`rank_local`): only then are collectives needed."""
    return (not _local_only and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


@contextmanager
def rank_local() -> Iterator[None]:
    """Inside this block statistics are this rank's own (no collective).

    For work only some ranks do, or that every rank does on the same full data (a report
    on a few rows): summing over ranks would hang (a collective the others never join) or
    count each row N times.
    """
    global _local_only
    previous, _local_only = _local_only, True
    try:
        yield
    finally:
        _local_only = previous


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` summed over all ranks (a copy; the input is not modified).

    Without a multi-rank process group this is the identity, so single-process code pays
    nothing. With one, every rank must call it (it is a collective).

    Args:
        tensor: Tensor on a device the process group's backend supports (CUDA for NCCL).

    Returns:
        The element-wise sum over ranks, or ``tensor`` itself when not distributed.
    """
    if not is_distributed():
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def max_over_ranks(value: int) -> int:
    """The largest ``value`` any rank holds (``value`` itself without a process group)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def collective_device() -> torch.device:
    """The device collectives of small host figures use: the current GPU under NCCL."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group).

    Used where rank 0 writes a file the others read next.
    """
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def resolve_backend(requested: str, device_spec: str = "auto") -> str:
    """``auto`` → NCCL when the ranks train on CUDA, else gloo.

    Raises:
        ValueError: For an unknown backend, or NCCL without CUDA.
    """
    requested = str(requested).strip().lower()
    if requested not in BACKENDS:
        raise ValueError(f"training.distributed.backend: unknown backend {requested!r}; "
                         f"expected one of {', '.join(BACKENDS)}")
    on_cuda = torch.cuda.is_available() and str(device_spec).strip().lower() != "cpu"
    if requested == "auto":
        return "nccl" if on_cuda else "gloo"
    if requested == "nccl" and not on_cuda:
        raise ValueError("training.distributed.backend is 'nccl' but the ranks run on the CPU "
                         f"(CUDA available: {torch.cuda.is_available()}, models.policy.device: "
                         f"{device_spec!r}); use 'gloo' or 'auto'")
    return requested


def init_distributed(backend: str = "auto", timeout_minutes: float = 30.0,
                     device_spec: str = "auto") -> bool:
    """Join torchrun's process group (a no-op for one process or when already joined).

    Under NCCL each rank first takes GPU ``LOCAL_RANK``, so ``device: auto``/``cuda``
    resolve to that rank's own GPU. ``timeout_minutes`` bounds every collective: a rank
    that stops answering ends the others with an error instead of a hang.

    Args:
        backend: ``auto``, ``nccl`` or ``gloo`` (``training.distributed.backend``).
        timeout_minutes: Collective timeout (``training.distributed.timeout_minutes``).
        device_spec: ``models.policy.device``; ``cpu`` makes ``auto`` pick gloo.

    Returns:
        True when this call created the group (the caller then owns :func:`shutdown`).
    """
    if not launched_distributed() or not dist.is_available() or dist.is_initialized():
        return False
    chosen = resolve_backend(backend, device_spec)
    if chosen == "nccl":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(chosen, timeout=timedelta(minutes=timeout_minutes))
    log.info("Joined the process group: %d ranks, backend %s, timeout %s min.",
             dist.get_world_size(), chosen, timeout_minutes)
    return True


def shutdown(failed: bool = False) -> None:
    """Leave the process group.

    After a success every rank waits for the others first, so none leaves while a peer
    still needs it. After an error nobody waits: NCCL's communicators are aborted (a
    clean destroy could block on a collective a dead peer never joins); gloo's sockets are
    closed, which makes the peers' pending collectives fail at once.

    Args:
        failed: This rank is stopping because of an error.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if failed and dist.get_backend() == "nccl" and hasattr(dist.distributed_c10d, "_abort_process_group"):
        dist.distributed_c10d._abort_process_group()
        return
    if not failed:
        barrier()
    dist.destroy_process_group()


# What a rank's collective raises when a peer process died (gloo closes the sockets; NCCL
# aborts the communicator after TORCH_NCCL_ASYNC_ERROR_HANDLING's watchdog notices).
_PEER_FAILURE_MARKS = ("Connection closed by peer", "pair closure", "Connection reset by peer",
                       "NCCL communicator was aborted", "DistBackendError")


def is_peer_failure(error: BaseException) -> bool:
    """True when ``error`` only says that another rank went away (its error is the cause)."""
    text = f"{type(error).__name__}: {error}"
    return any(mark in text for mark in _PEER_FAILURE_MARKS)


def quiet_non_main_logging(env: Mapping[str, str] | None = None) -> bool:
    """On rank > 0 keep only warnings and errors of the project, Kedro and MLflow loggers,
    and drop Python warnings (rank 0 shows the same ones), so the console shows one copy
    of the run's log. Errors and tracebacks of any rank still show.

    Returns:
        True when this process was quietened.
    """
    if is_main_process(env):
        return False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    return True


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group.

    Used for small host results (generated token lists), not tensors of training.
    """
    if not is_distributed():
        return [obj]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
