"""Where the model runs and in which precision, decided once from configuration.

Constructors never pick a device (no ``.cuda()`` in ``__init__``); callers resolve the
config strings here and move the model.
"""

from __future__ import annotations

import re

import torch

DEVICE_KEY = "models.policy.device"
DTYPE_KEY = "models.policy.dtype"
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N`` into a device that exists here.

    Args:
        spec: The config value (``models.policy.device``); ``auto`` picks CUDA when
            available, else the CPU.

    Raises:
        ValueError: Unknown spelling, or a CUDA device this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ValueError(f"{DEVICE_KEY} must be a string (auto | cpu | cuda | cuda:N), "
                         f"found {spec!r}")
    name = spec.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = _CUDA_INDEX.match(name)
    if name != "cuda" and match is None:
        raise ValueError(f"{DEVICE_KEY}: unknown device {spec!r}; expected auto, cpu, cuda "
                         "or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"{DEVICE_KEY} is {spec!r} but CUDA is not available on this "
                         "machine; use 'auto' or 'cpu'")
    if match is not None:
        index = int(match.group(1))
        if index >= torch.cuda.device_count():
            raise ValueError(f"{DEVICE_KEY} is {spec!r} but only {torch.cuda.device_count()} "
                             "CUDA device(s) exist")
        return torch.device("cuda", index)
    return torch.device("cuda", torch.cuda.current_device())


def resolve_dtype(name: str | None, device: torch.device | str) -> torch.dtype:
    """Turn ``float32 | bfloat16`` (or None = float32) into a dtype valid on ``device``.

    bf16 is refused on the CPU: CPU bf16 matmuls are slow and their rounding differs
    from the GPU's, so a CPU run would not reproduce what the config promises.

    Args:
        name: The config value (``models.policy.dtype``).
        device: Where the model will run.

    Raises:
        ValueError: Unknown name, or bf16 on a device that cannot run it.
    """
    if name is None:
        return torch.float32
    if not isinstance(name, str) or name.strip().lower() not in _DTYPES:
        raise ValueError(f"{DTYPE_KEY}: unknown dtype {name!r}; expected one of float32, "
                         "bfloat16")
    dtype = _DTYPES[name.strip().lower()]
    device = torch.device(device)
    if dtype is torch.bfloat16:
        if device.type != "cuda":
            raise ValueError(f"{DTYPE_KEY} is {name!r} but the device is {device}: bf16 needs "
                             "CUDA; set it to float32 for CPU runs")
        if not torch.cuda.is_bf16_supported():
            raise ValueError(f"{DTYPE_KEY} is {name!r} but this GPU does not support bf16; "
                             "use float32")
    return dtype
