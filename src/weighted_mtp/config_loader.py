"""A config loader with a scale *preset* layer between ``conf/base`` and the recipe env.

Two axes vary independently: the recipe (``--env baseline|verifiable|rho1``) and the scale
(the micro model on a laptop, Meta's 7B across GPUs). Kedro selects one env, so the scale is
chosen by the ``WMTP_PRESET`` environment variable, read from ``conf/presets/<name>/``, and
merged in this order: base → preset → recipe env → ``--params``.

Why an environment variable and not a runtime parameter: Kedro resolves ``--params`` after
the config files are merged, so a parameter cannot choose which files are read; a variable
is already set when the loader starts, and reaches every ``torchrun`` rank, the dry-run
command and ``KedroSession.create`` alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

PRESET_VARIABLE = "WMTP_PRESET"
DEFAULT_PRESET = "micro"
PRESETS_DIR = "presets"
LAYERED_KEYS = ("parameters", "catalog", "globals", "mlflow")


def active_preset() -> str:
    """The preset named by ``WMTP_PRESET`` (``micro`` when unset or empty)."""
    return os.environ.get(PRESET_VARIABLE, "").strip() or DEFAULT_PRESET


def preset_dir(conf_source: str | Path, preset: str | None = None) -> Path:
    """``conf/presets/<preset>``; raises with the available names when it does not exist."""
    preset = preset or active_preset()
    root = Path(conf_source) / PRESETS_DIR
    path = root / preset
    if not path.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ValueError(
            f"{PRESET_VARIABLE}={preset!r}: no preset folder {path}; available presets: "
            f"{', '.join(available) or 'none'}"
        )
    return path


class PresetConfigLoader(OmegaConfigLoader):
    """OmegaConfigLoader that merges ``conf/presets/<WMTP_PRESET>`` between base and env.

    Each layer is resolved on its own (as Kedro does for base and env) and merged with the
    key's merge strategy, so a preset, like a recipe env, holds only what it changes.
    """

    def _resolve_from_raw_config(  # noqa: PLR0913
        self,
        key: str,
        base_configs: dict,
        env_configs: dict,
        base_path: str,
        env_path: str,
        processed_files: set,
    ) -> dict[str, Any]:
        if key not in LAYERED_KEYS:
            return super()._resolve_from_raw_config(
                key, base_configs, env_configs, base_path, env_path, processed_files
            )
        layer_path = str(preset_dir(self.conf_source))
        patterns = [*self.config_patterns[key]]
        preset_configs = self._read_dir_configs(layer_path, patterns, key, processed_files, False)
        base = super()._resolve_from_raw_config(key, base_configs, {}, base_path, base_path, processed_files)
        preset = self._merge_and_resolve(key, preset_configs) if preset_configs else {}
        merged = self._merge_configs(base, preset, key, layer_path) if preset else base
        run_env = self.env or self.default_run_env
        if run_env == self.base_env or not env_configs:
            return merged
        return self._merge_configs(merged, self._merge_and_resolve(key, env_configs), key, env_path)


RUNTIME_SOURCE = "runtime (--params)"


def parameter_sources(
    conf_source: str | Path,
    env: str | None,
    runtime_params: dict[str, Any] | None = None,
    base_env: str = "base",
) -> dict[str, str]:
    """Which file set each final parameter value (the last layer that defines the leaf).

    Reads the raw YAML of each layer in merge order (base, preset, env) and the runtime
    params, so the dry run can say where every value came from.

    Returns:
        ``{"training.stage2.beta": "conf/verifiable/parameters.yml", ...}`` with paths
        relative to the parent of ``conf_source``.
    """
    import yaml  # local: only the dry run needs it

    conf_source = Path(conf_source)
    layers = [conf_source / base_env, preset_dir(conf_source)]
    if env and env != base_env:
        layers.append(conf_source / env)
    sources: dict[str, str] = {}
    for layer in layers:
        for path in sorted(layer.glob("**/parameters*.y*ml")):
            label = str(path.relative_to(conf_source.parent))
            for key in _leaf_keys(yaml.safe_load(path.read_text()) or {}):
                sources[key] = label
    for key in _leaf_keys(runtime_params or {}):
        sources[key] = RUNTIME_SOURCE
    return sources


def sources_by_section(sources: dict[str, str]) -> dict[str, list[str]]:
    """Per top-level key, the layers that contributed to it, in merge order."""
    order = {source: index for index, source in enumerate(dict.fromkeys(sources.values()))}
    sections: dict[str, list[str]] = {}
    for key, source in sources.items():
        entry = sections.setdefault(key.split(".")[0], [])
        if source not in entry:
            entry.append(source)
    return {k: sorted(v, key=lambda s: (s == RUNTIME_SOURCE, _layer_rank(s), order[s])) for k, v in sections.items()}


def _layer_rank(source: str) -> int:
    if f"/{PRESETS_DIR}/" in source:
        return 1
    return 0 if "/base/" in source else 2


def _leaf_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict) or not tree:
        return [prefix] if prefix else []
    keys: list[str] = []
    for key, value in tree.items():
        keys.extend(_leaf_keys(value, f"{prefix}.{key}" if prefix else str(key)))
    return keys
