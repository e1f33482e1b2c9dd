"""Kedro project settings.

Parameters and the mlflow config are deep-merged ("soft") so a recipe env such as
``conf/verifiable`` only states what differs from ``conf/base``; Kedro's default would
replace whole top-level keys and silently drop the base defaults. A scale preset
(``WMTP_PRESET``, default ``micro``) is merged between base and the recipe env.

MLflow: :class:`weighted_mtp.hooks.TrackingHooks` drives kedro-mlflow's hook itself (it
starts the run only when ``mlflow.enabled`` is true, on rank 0, after checking the server),
so the plugin's own registration is disabled. The name is the distribution's,
``kedro_mlflow`` with an underscore; ``kedro-mlflow`` would silently match nothing.

torchrun: :class:`weighted_mtp.hooks.DistributedHooks` joins the process group and keeps
ranks > 0 from writing (docs/DISTRIBUTED.md).

Warnings a user cannot act on are silenced here, before the imports that raise them: Kedro
and kedro-mlflow call OmegaConf's deprecated ``register_new_resolver`` (their code, not the
project's config), and importing kedro-mlflow defines an MLflow ``PythonModel`` whose
``predict`` has no type hints. Anything else still shows.
"""

import os
import warnings

warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)


def _import_kedro_mlflow_quietly() -> None:
    """MLflow warns when a PythonModel subclass is defined (kedro-mlflow's, on import) inside
    its own ``simplefilter("once")``, which no filter set here can override: drop that one
    message while the module is imported."""
    shown = warnings.showwarning

    def show(message, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - warnings' own signature
        if "Add type hints to the `predict` method" not in str(message):
            shown(message, *args, **kwargs)

    warnings.showwarning = show
    try:
        import kedro_mlflow.mlflow  # noqa: F401
    finally:
        warnings.showwarning = shown


_import_kedro_mlflow_quietly()

from weighted_mtp.config_loader import PresetConfigLoader  # noqa: E402 - after the filters
from weighted_mtp.hooks import ConfigHooks, DistributedHooks, RunHooks, TrackingHooks  # noqa: E402
from weighted_mtp.runtime.distributed import is_main_process, quiet_non_main_logging  # noqa: E402


def _env_or(name: str, default: str | None = None) -> str | None:
    """``${env_or:VAR,default}``: an environment variable with a fallback, for mlflow.yml."""
    return os.environ.get(name) or default


# base -> conf/presets/$WMTP_PRESET (scale) -> conf/<env> (recipe) -> --params
CONFIG_LOADER_CLASS = PresetConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "globals": "soft"},
    "custom_resolvers": {"env_or": _env_or},
    # kedro-mlflow adds this pattern in its own hook; TrackingHooks reads mlflow.yml first.
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]},
}

HOOKS = (TrackingHooks(), DistributedHooks(), RunHooks(), ConfigHooks())  # pluggy calls the last one first
# Under torchrun (RANK is set before Python starts) ranks > 0 also run without kedro-viz's
# hooks, which write run statistics files, and log only warnings (rank 0 logs the run).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",) if is_main_process() else ("kedro_mlflow", "kedro-viz")
quiet_non_main_logging()
