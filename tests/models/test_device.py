"""runtime.device: config strings → devices and dtypes, with errors naming the key."""

from __future__ import annotations

import pytest
import torch

from weighted_mtp.runtime.device import resolve_device, resolve_dtype

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_device_names_the_key() -> None:
    with pytest.raises(ValueError, match="models.policy.device: unknown device 'tpu'"):
        resolve_device("tpu")


@cpu_only
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_dtypes_on_cpu() -> None:
    assert resolve_dtype(None, "cpu") is torch.float32
    assert resolve_dtype("float32", torch.device("cpu")) is torch.float32
    with pytest.raises(ValueError, match="models.policy.dtype is 'bfloat16'.*bf16 needs CUDA"):
        resolve_dtype("bfloat16", "cpu")
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        resolve_dtype("float8", "cpu")


@pytest.mark.gpu
@needs_cuda
def test_bf16_on_cuda() -> None:
    assert resolve_device("cuda").type == "cuda"
    assert resolve_dtype("bf16", "cuda") is torch.bfloat16
