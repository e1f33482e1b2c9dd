"""``python -m weighted_mtp [run options]`` runs the project like ``kedro run``.

It is the entry point for ``torchrun``, which starts a Python module or script per rank::

    torchrun --nproc_per_node 4 -m weighted_mtp --env verifiable

Run it from the project root (the folder with ``pyproject.toml`` and ``conf/``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from kedro.framework.project import configure_project


def run_command(package_name: str) -> Any:
    """The project's own ``run`` command when ``cli.py`` defines one, else Kedro's.

    Kedro's ``find_run_command`` fails when the project's ``cli.py`` adds commands but
    does not re-export ``run``; ``kedro run`` itself still uses Kedro's command then.
    """
    project_cli = importlib.import_module(f"{package_name}.cli")
    command = getattr(project_cli, "run", None)
    if command is None:
        from kedro.framework.cli.project import run as command
    return command


def main(*args: Any, **kwargs: Any) -> object:
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive
    return run_command(package_name)(*args, **kwargs)


if __name__ == "__main__":
    main()
