"""Kedro project settings.

Parameters and the mlflow config are deep-merged ("soft") so a recipe env such as
``conf/verifiable`` only states what differs from ``conf/base``; Kedro's default would
replace whole top-level keys and silently drop the base defaults.
"""

import os

from kedro.config import OmegaConfigLoader


def _env_or(name: str, default: str | None = None) -> str | None:
    """``${env_or:VAR,default}``: an environment variable with a fallback, for mlflow.yml."""
    return os.environ.get(name) or default


CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "globals": "soft"},
    "custom_resolvers": {"env_or": _env_or},
}
