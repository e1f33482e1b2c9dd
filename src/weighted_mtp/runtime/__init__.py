"""Runtime decisions kept out of the model code (device, precision)."""

from weighted_mtp.runtime.device import resolve_device, resolve_dtype

__all__ = ["resolve_device", "resolve_dtype"]
