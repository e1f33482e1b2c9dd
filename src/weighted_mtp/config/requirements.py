"""Checks of the machine against the config: files that must exist, devices that must be there.

Separate from :func:`~weighted_mtp.config.validate_config`, which is a pure function of the
parameters: these look at the disk and at CUDA, so a production run on the wrong machine
stops before touching data, with every missing piece named.
"""

from __future__ import annotations

from pathlib import Path

import torch

from weighted_mtp.config.schema import RunConfig


def environment_problems(config: RunConfig) -> list[str]:
    """Everything this machine lacks for ``config``, one message per problem."""
    problems: list[str] = []
    policy = config.models.policy
    preset = config.project.preset
    needs = f" (preset {preset})" if preset else ""
    if not policy.create_micro:
        path = Path(policy.path)
        if not path.is_dir():
            problems.append(
                f"models.policy.path: model directory '{path}' does not exist{needs}; convert Meta's "
                "checkpoint with `python -m weighted_mtp.models.convert`, import a Hugging Face Llama "
                "with `kedro wmtp import-hf`, or set WMTP_MODEL_DIR"
            )
        else:
            if not (path / "metadata.json").is_file() and not (path / "configs" / "params.json").is_file():
                problems.append(f"models.policy.path: '{path}' has neither metadata.json nor configs/params.json")
            if not (path / "tokenizer").is_dir():
                problems.append(f"models.policy.path: '{path}' has no tokenizer/ folder{needs}")
    wants_cuda = policy.device.startswith("cuda") or policy.dtype == "bfloat16"
    if wants_cuda and not torch.cuda.is_available():
        problems.append(
            f"models.policy.device: '{policy.device}' with dtype '{policy.dtype}' needs CUDA GPUs{needs}, "
            "but CUDA is not available on this machine"
        )
    return problems


def check_environment(config: RunConfig) -> None:
    """Raise one ValueError listing :func:`environment_problems`, if any."""
    problems = environment_problems(config)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ValueError(f"This machine cannot run the configuration ({len(problems)} problem(s)):\n{lines}")
