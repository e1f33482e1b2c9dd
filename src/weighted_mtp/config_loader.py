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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.io.core import get_protocol_and_path

PRESET_VARIABLE = "WMTP_PRESET"
DEFAULT_PRESET = "micro"
PRESETS_DIR = "presets"
LAYERED_KEYS = ("parameters", "catalog", "globals", "mlflow")
_ARCHIVES = ("tar", "zip")


def active_preset() -> str:
    """The preset named by ``WMTP_PRESET`` (``micro`` when unset or empty)."""
    return os.environ.get(PRESET_VARIABLE, "").strip() or DEFAULT_PRESET


@dataclass(frozen=True)
class ConfTree:
    """The conf folder as Kedro's config loader reads it, through one fsspec filesystem.

    ``conf_source`` may be a local folder, the archive ``kedro package`` writes
    (``--conf-source dist/conf-weighted_mtp.tar.gz``, or a zip) or a remote URL; pathlib
    would only see the first. The root inside the filesystem is found as
    ``OmegaConfigLoader`` finds it, so a preset folder is read from where base and the env
    are read.

    Attributes:
        fs: The filesystem (``file``, ``tar``, ``zip``, ``s3``, ...).
        root: The conf folder's path in ``fs`` (for an archive, its top folder: ``conf``).
    """

    fs: Any
    root: str

    @classmethod
    def of(cls, conf_source: str | Path) -> ConfTree:
        source = str(conf_source)
        fs, protocol = OmegaConfigLoader._initialise_filesystem_and_protocol(source)
        if protocol in _ARCHIVES:
            return cls(fs, fs.ls("", detail=False)[-1])  # the archive's top folder, as Kedro reads it
        return cls(fs, source if protocol == "file" else get_protocol_and_path(source)[1])

    def path(self, *parts: str) -> str:
        """``root/part/...`` in the filesystem."""
        return "/".join([self.root.rstrip("/"), *parts])

    def preset_dir(self, preset: str | None = None) -> str:
        """``<root>/presets/<preset>``; raises with the available names when it does not exist.

        Raises:
            ValueError: No such preset folder (the message lists the ones there are).
        """
        preset = preset or active_preset()
        root, path = self.path(PRESETS_DIR), self.path(PRESETS_DIR, preset)
        if not self.fs.isdir(path):
            available = sorted(PurePosixPath(entry).name for entry in self.fs.ls(root, detail=False)
                               if self.fs.isdir(entry)) if self.fs.isdir(root) else []
            raise ValueError(
                f"{PRESET_VARIABLE}={preset!r}: no preset folder {path}; available presets: "
                f"{', '.join(available) or 'none'}"
            )
        return path

    def files(self, folder: str, pattern: str) -> list[str]:
        """Files under ``folder`` matching the glob ``pattern``, sorted."""
        return sorted(self.fs.glob(f"{folder.rstrip('/')}/{pattern}"))

    def read_text(self, path: str) -> str:
        with self.fs.open(path, "rb") as handle:
            return handle.read().decode("utf-8")

    def label(self, path: str) -> str:
        """``path`` relative to the folder that holds the conf folder: ``conf/base/parameters.yml``."""
        strip = self.fs._strip_protocol
        parent, target = PurePosixPath(strip(self.root)).parent, PurePosixPath(strip(path))
        return str(target) if str(parent) in ("", ".") else str(target.relative_to(parent))


def preset_dir(conf_source: str | Path, preset: str | None = None) -> str:
    """``conf/presets/<preset>`` of ``conf_source`` (a folder, an archive or a URL); see
    :meth:`ConfTree.preset_dir`."""
    return ConfTree.of(conf_source).preset_dir(preset)


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
        layer_path = ConfTree.of(self.conf_source).preset_dir()
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

    tree = ConfTree.of(conf_source)
    layers = [tree.path(base_env), tree.preset_dir()]
    if env and env != base_env:
        layers.append(tree.path(env))
    sources: dict[str, str] = {}
    for layer in layers:
        for path in tree.files(layer, "**/parameters*.y*ml"):
            label = tree.label(path)
            for key in _leaf_keys(yaml.safe_load(tree.read_text(path)) or {}):
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
