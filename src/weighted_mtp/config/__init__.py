"""The run configuration: frozen dataclasses and the validator that builds them."""

from weighted_mtp.config.schema import RunConfig
from weighted_mtp.config.validate import validate_config

__all__ = ["RunConfig", "validate_config"]
