"""Shared pieces of the distributed tests: a tiny world on disk, free ports, torchrun.

Worker processes (``torch.multiprocessing.spawn`` or ``torchrun``) start from nothing, so
everything they need is written to a folder first: the tokenizer, the model directory and
the parameters, which every rank then loads exactly as the pipeline's ranks do.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from project_runs import merge

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).parent / "torchrun"
# A developer's shell must not change the runs: torchrun sets the rank variables itself,
# and a scale preset would change the tiny configuration.
NOT_INHERITED = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "WMTP_PRESET")

_OPS = [("add", "a + b"), ("sub", "a - b"), ("mul", "a * b"), ("max", "max(a, b)"),
        ("min", "min(a, b)"), ("pow", "a ** b"), ("neg", "-a + b")]


def records(n: int) -> list[dict[str, Any]]:
    """``n`` records cycling over a few problems, 2 correct solutions and 1 incorrect each."""
    rows = []
    for i in range(n):
        name, expr = _OPS[(i // 3) % len(_OPS)]
        correct = i % 3 != 2
        body = expr if correct else expr.replace("a", "b", 1)
        rows.append({
            "instruction": f"Write {name}.", "input": "", "output": f"def f(a, b):\n    return {body} + {i}\n",
            "task_id": f"t{i}", "problem_id": f"p-{name}-{i // 3}", "is_correct": correct, "difficulty": 1,
        })
    return rows


def params(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """conf/base parameters with small training settings (validate with ``validate_config``)."""
    with open(PROJECT_ROOT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        base = yaml.safe_load(handle)
    small = {
        "project": {"recipe": "verifiable", "experiment": "default"},  # the file's is ${globals:...}
        "dataset": {"max_length": 64},
        "training": {"seed": 0, "log_interval": 1, "eval_interval": 1000, "patience": 100,
                     "pretrain": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 3},
                     "stage1": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 3},
                     "stage2": {"n_epochs": 1, "learning_rate": 3e-3, "batch_size": 3,
                                "max_grad_norm": 1.0}},
    }
    return merge(merge(base, small), overrides or {})


def make_world(folder: Path, n_records: int = 13) -> Path:
    """Write records, a tokenizer, a seeded tiny model and the parameters under ``folder``."""
    from weighted_mtp.data import tokenizer_training_texts, train_bpe_tokenizer
    from weighted_mtp.models import create_micro_model

    rows = records(n_records)
    (folder / "records.json").write_text(json.dumps(rows))
    tokenizer = train_bpe_tokenizer(tokenizer_training_texts(rows), vocab_size=400)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    create_micro_model(folder / "model", vocab_size=len(tokenizer), seed=0, dim=32, n_layers=5, n_heads=2,
                       n_kv_heads=1, n_future_tokens=4, max_seq_len=64, multiple_of=16)
    (folder / "params.json").write_text(json.dumps(params()))
    return folder


def load_world(folder: Path) -> tuple[Any, Any, list[dict[str, Any]], Any]:
    """(model, tokenizer, records, RunConfig) as written by :func:`make_world`."""
    from weighted_mtp.config import validate_config
    from weighted_mtp.data import load_tokenizer
    from weighted_mtp.models import MetaLlamaMTPAdapter

    model = MetaLlamaMTPAdapter.from_pretrained(folder / "model")
    config = validate_config(json.loads((folder / "params.json").read_text()))
    return model, load_tokenizer(folder / "tokenizer"), json.loads((folder / "records.json").read_text()), config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    """What torchrun sets for a worker (for ``mp.spawn`` workers that call the project's
    own ``init_distributed``)."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment less the rank variables, plus ``env``; the package this
    process imported comes first on ``PYTHONPATH``, so workers started in another folder
    run the same code (a relative ``PYTHONPATH=src`` would not reach them)."""
    import weighted_mtp

    inherited = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    package_root = str(Path(weighted_mtp.__file__).resolve().parents[1])
    inherited["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, inherited.get("PYTHONPATH")]))
    return {**inherited, **env}


def run_torchrun(args: list[str], cwd: Path, env: dict[str, str], timeout: float,
                 nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node N --master_port <free> ARGS`` in ``cwd``, output captured.

    Raises:
        subprocess.TimeoutExpired: When the run hangs (the whole process group is killed).
    """
    command = [str(TORCHRUN), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *args]
    process = subprocess.Popen(command, cwd=cwd, env=child_env(env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, output, None)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a launcher and every process under it. torchrun starts each worker in its own
    session, so killing the launcher's process group leaves the workers alive, holding the
    output pipe open: waiting for the output would then hang the test suite."""
    pids, queue = [], [process.pid]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in children.read_text().split())
            except OSError:
                pass
    for pid in reversed(pids):  # workers first, so the launcher cannot restart them
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def run_two_nodes(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> list[subprocess.CompletedProcess]:
    """Two ``torchrun --nnodes 2 --nproc-per-node 1`` launchers on 127.0.0.1 (node ranks 0
    and 1) meeting through a c10d rendezvous, as two machines would: the several-node
    command of docs/DISTRIBUTED.md on one machine. Outputs captured, in node order.

    Raises:
        subprocess.TimeoutExpired: When the run hangs (both process groups are killed).
    """
    endpoint = f"127.0.0.1:{free_port()}"
    processes = []
    for node in range(2):
        command = [str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", endpoint, "--rdzv-id", "wmtp-test", "--node-rank", str(node), *args]
        processes.append(subprocess.Popen(command, cwd=cwd, env=child_env(env), stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, start_new_session=True))
    results = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, output, None))
    except subprocess.TimeoutExpired:
        for process in processes:
            kill_tree(process)
        raise
    return results
