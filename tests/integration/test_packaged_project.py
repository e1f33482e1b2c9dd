"""``kedro package``, then the packaged project run from elsewhere with ``--conf-source``.

The wheel is built from a scratch copy of this checkout, installed into a temporary venv
that sees this interpreter's packages (so nothing downloads), and run from a folder that
holds only raw data, with the configuration read from the conf archive: base, the scale
preset and the recipe env all come out of the ``.tar.gz``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from project_runs import RAW

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("src", "tools", "conf", "pyproject.toml", "README.md", ".telemetry")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH: only the wheel may provide the package."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "WMTP_DATA_ROOT", "WMTP_EXPERIMENT")}
    return {**env, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "WMTP_PROGRESS": "0", **extra}


def _run(command: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=_clean_env(**extra), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, Path]:
    """``(the conf archive, the venv's python)`` after ``kedro package`` and a wheel install."""
    project = tmp_path_factory.mktemp("packaged") / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree(source, project / name, ignore=ignore) if source.is_dir()
         else shutil.copy(source, project / name))
    for private in (project / "conf" / "local").glob("*.yml"):  # a developer's own secrets stay here
        private.unlink()
    _run([str(Path(sys.executable).with_name("kedro")), "package"], cwd=project)
    wheel, archive = project / "dist/weighted_mtp-0.1.0-py3-none-any.whl", project / "dist/conf-weighted_mtp.tar.gz"
    assert wheel.is_file() and archive.is_file()

    venv = project.parent / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=project.parent)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=project.parent).stdout.strip()
    # This interpreter's packages (kedro, torch, mlflow) without its editable weighted_mtp:
    # a plain path line does not run the editable install's .pth finder.
    Path(purelib, "parent_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=project.parent)
    return archive, python


def test_packaged_project_runs_from_the_conf_archive(package, tmp_path):
    archive, python = package
    workdir = tmp_path / "elsewhere"
    raw = workdir / "data" / "01_raw" / RAW.name
    raw.parent.mkdir(parents=True)
    raw.write_text("".join(RAW.read_text(encoding="utf-8").splitlines(keepends=True)[:30]), encoding="utf-8")
    where = _run([str(python), "-c", "import weighted_mtp; print(weighted_mtp.__file__)"], cwd=workdir).stdout
    assert str(python.parents[1]) in where  # the installed wheel, not this checkout

    _run([str(python.with_name("weighted-mtp")), "--conf-source", str(archive), "--env", "verifiable",
          "--pipelines", "data_processing", "--params", "dataset.tokenizer_vocab_size=600"],
         cwd=workdir, WMTP_PRESET="local-light")

    assert (workdir / "data/05_model_input/train.jsonl").is_file()
    assert (workdir / "data/05_model_input/tokenizer/tokenizer.json").is_file()
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")  # mlflow.yml from the archive
    (run,) = client.search_runs([client.get_experiment_by_name("weighted-mtp/verifiable").experiment_id])
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert params["training.stage2.beta"] == "1.2"              # conf/verifiable, in the archive
    assert params["dataset.max_length"] == "384"                # conf/presets/local-light, in the archive
    assert params["training.stage2.weight_clip_max"] == "5.0"   # conf/base, in the archive
    assert params["dataset.tokenizer_vocab_size"] == "600"      # --params


def test_parameter_sources_read_the_archive(package):
    from weighted_mtp.config_loader import parameter_sources

    archive, _ = package
    from_archive = parameter_sources(archive, "verifiable", {"training": {"log_interval": 7}})
    assert from_archive == parameter_sources(ROOT / "conf", "verifiable", {"training": {"log_interval": 7}})
    assert from_archive["training.stage2.beta"] == "conf/verifiable/parameters.yml"
    assert from_archive["training.stage2.n_epochs"] == "conf/presets/micro/parameters.yml"
