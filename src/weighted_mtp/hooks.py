"""Project hooks: MLflow tracking through kedro-mlflow, switched by the parameters.

kedro-mlflow's own registration is disabled in ``settings.py`` and :class:`TrackingHooks`
drives its hook instead, because the plugin decides too early and from the wrong place
for this project:

- it sets up the store and the experiment when the context is created, so a dry run or
  a run with ``mlflow.enabled: false`` would still contact the server;
- its experiment name comes from mlflow.yml, which cannot see the merged parameters
  (``weighted-mtp/<recipe>`` must follow ``--env`` and ``--params``);
- it logs the ``parameters`` input once per node, one request per key, under a
  ``parameters.`` prefix.

So: nothing touches MLflow until the pipeline starts; then the parameters are validated,
the store is checked (a server: one request; a sqlite file: writable; one clear line),
kedro-mlflow creates the experiment and starts the run, and this hook logs the flattened parameters, tags, the
config file, the best model (an MLflow model), optional checkpoints and ``metrics.json`` (the token-weight
histogram is a node's catalog output). Per-step
metrics come from the training loops (``weighted_mtp.tracking.backend``).

:class:`DistributedHooks` turns the N copies of the pipeline that ``torchrun`` starts into
one run: a process group, one writer of every file, a clean stop on every rank when one
fails (docs/DISTRIBUTED.md). :class:`RunHooks` lets one run at a time use an experiment
folder and gives every rank the run's id; :class:`ConfigHooks` validates the whole config
once before any node (README, "Recovering from a crash").
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from kedro_mlflow.io.catalog.switch_catalog_logging import switch_catalog_logging
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from weighted_mtp.config import DistributedConfig, validate_block, validate_config
from weighted_mtp.config_loader import parameter_sources
from weighted_mtp.datasets.rank_zero import make_read_only, persisted_names
from weighted_mtp.runtime import distributed
from weighted_mtp.runtime.run_lock import RunLock, RunLockedError
from weighted_mtp.runtime.runs import RUN_ID_VARIABLE, new_run_id
from weighted_mtp.tracking.options import TrackingOptions, tracking_options
from weighted_mtp.tracking.run_record import log_run_record, parameter_count, run_tags
from weighted_mtp.tracking.server import check_tracking_store, local_artifact_location, resolve_tracking_uri

log = logging.getLogger(__name__)

METRICS_DATASET = "metrics"  # logged as metrics.json
BEST_MODEL_DATASET = "best_model@model"  # logged as the MLflow model (mlflow.log_model)
HOST_TAG, PID_TAG = "wmtp.host", "wmtp.pid"  # who runs it: a later run can tell an abandoned run
MODEL_PARAMETERS_TAG = "model_parameters"


class ConfigHooks:
    """Validate the merged parameters and the machine before the first node runs.

    Nodes take only the parameter blocks they use, so a node's own check sees its block
    alone; this hook makes sure the whole configuration is valid (every problem listed by
    key path, with the conf file or ``--params`` that set it) before any data is touched,
    whichever nodes run.
    """

    def __init__(self) -> None:
        self._context: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from weighted_mtp.config.requirements import check_environment

        params = self._context.params if self._context is not None else {}
        check_environment(validate_config(params, self._parameter_sources()))

    def _parameter_sources(self) -> dict[str, str] | None:
        """Which file set each parameter; None when that cannot be worked out, since the
        file names only annotate the problems and must never hide them."""
        if self._context is None:
            return None
        loader = self._context.config_loader
        try:
            return parameter_sources(loader.conf_source, loader.env or loader.default_run_env,
                                     loader.runtime_params, loader.base_env or "base")
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("Could not tell which conf file set each parameter (%s: %s); "
                        "config problems are listed without their files.", type(error).__name__, error)
            return None


class RunHooks:
    """One run at a time per experiment folder, and one run id on every rank.

    Before the first node (after the process group exists, before the MLflow run starts)
    rank 0 takes the experiment folder's lock (:class:`~weighted_mtp.runtime.run_lock.RunLock`)
    and every rank learns the run id (``WMTP_RUN_ID``) that names the run's checkpoint
    folder; a second run in the same folder fails at once, naming the holder. The lock is
    released when the run ends, however it ends (the kernel drops it if the process dies).
    """

    def __init__(self) -> None:
        self._context: Any = None
        self._lock: RunLock | None = None
        self._previous_run_id: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context = context

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._previous_run_id = os.environ.get(RUN_ID_VARIABLE)
        run_id = self._previous_run_id or new_run_id()
        problem = None
        if distributed.is_main_process():
            folder = self._context.params["project"]["checkpoint_dir"]
            self._lock = RunLock(folder, run_id)
            try:
                self._lock.acquire()
            except RunLockedError as error:
                self._lock, problem = None, str(error)
        run_id, problem = distributed.all_gather_objects((run_id, problem))[0]  # rank 0's answer
        if problem:
            raise RunLockedError(problem)
        os.environ[RUN_ID_VARIABLE] = run_id
        log.info("Run %s", run_id)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._end()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._end()

    def _end(self) -> None:
        """Release the lock; the next run in this process gets its own id."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._previous_run_id is None:
            os.environ.pop(RUN_ID_VARIABLE, None)
        else:
            os.environ[RUN_ID_VARIABLE] = self._previous_run_id


class TrackingHooks:
    """Starts, fills and ends the MLflow run of a Kedro run (only when tracking is on)."""

    def __init__(self) -> None:
        self._plugin = MlflowHook()
        self._context: Any = None
        self._options: TrackingOptions | None = None
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._catalog: Any = None
        self._mlflow_yml: Mapping[str, Any] = {}
        self._started = 0.0
        self._counted = False
        # SIGINT and SIGTERM end the tracked run KILLED; torchrun's SIGTERM is DistributedHooks'
        self._signals = StopSignals(_raise_run_stopped, lambda: [signal.SIGINT] + (
            [] if distributed.launched_distributed() else [signal.SIGTERM]))

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Resolve the tracking choices; give kedro-mlflow its config. No MLflow I/O here."""
        self._context, self._run_id, self._counted = context, None, False
        self._options = tracking_options(context.params)
        self._mlflow_yml = _loaded_mlflow_yml(context)
        conf = mlflow_conf(self._mlflow_yml, self._options, context.project_path)
        context.config_loader["mlflow"] = conf  # what kedro-mlflow reads when the run starts
        # For `kedro mlflow ui` and notebooks; replaced by the set-up config at run start.
        context.__setattr__("mlflow", KedroMlflowConfig.model_validate(conf))

    @hook_impl
    def after_catalog_created(self, catalog: Any, conf_catalog: Any, conf_creds: Any, parameters: Any,
                              save_version: Any, load_versions: Any) -> None:
        """kedro-mlflow names its metric datasets after their catalog entries (no I/O)."""
        self._plugin.after_catalog_created(catalog=catalog, conf_catalog=conf_catalog, conf_creds=conf_creds,
                                           parameters=parameters, save_version=save_version,
                                           load_versions=load_versions)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Start the run (tracking on) or switch the catalog's MLflow datasets off."""
        if not self._options.enabled:
            log.info("MLflow tracking is off (mlflow.enabled: false, or not rank 0): no run is recorded.")
            switch_catalog_logging(catalog, False)
            return
        conf = self._context.config_loader["mlflow"]
        export_credentials(self._context, self._mlflow_yml)
        check_tracking_store(conf["server"]["mlflow_tracking_uri"])
        self._plugin.after_context_created(self._context)  # tracking URI, experiment
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        self._plugin.mlflow_config.tracking.run.name = (
            self._options.run_name or f"{self._options.recipe}/{'+'.join(names)}")
        self._plugin.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        self._run_id = mlflow.active_run().info.run_id
        self._catalog = catalog
        self._client = MlflowClient(mlflow.get_tracking_uri())
        self._started = time.time()
        self._record_run()
        self._signals.catch()
        fail_abandoned_runs(self._client, mlflow.active_run().info.experiment_id, self._run_id)

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool) -> None:
        """Tag the model's parameter count from the first model a node receives."""
        if self._run_id is not None:
            self._count_parameters(inputs)

    @hook_impl
    def after_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], outputs: dict[str, Any],
                       is_async: bool) -> None:
        """Upload a training node's checkpoints."""
        if self._run_id is None:
            return
        self._count_parameters(outputs)
        for value in outputs.values():
            if isinstance(value, Mapping) and value.get("stage") in ("stage1", "stage2"):
                self._upload_checkpoints(value)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """The run's metrics report, as ``metrics.json``; the best model, as the MLflow model."""
        if self._run_id is None:
            return
        if dataset_name == METRICS_DATASET:
            self._client.log_dict(self._run_id, data, "metrics.json")
        elif dataset_name == BEST_MODEL_DATASET and self._options.log_model:
            self._log_model()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """End the run (FINISHED)."""
        if self._run_id is None:
            switch_catalog_logging(catalog, True)
            return
        self._signals.restore()
        self._plugin.after_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        self._run_id = None

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """End the run as KILLED (a signal stopped it) or FAILED (an error)."""
        self._signals.restore()
        if self._run_id is None:
            return
        if isinstance(error, (RunStopped, RankStopped)):
            self._client.set_tag(self._run_id, "wmtp.stopped_by", str(error))
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        else:
            self._plugin.on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline, catalog=catalog)
        self._run_id = None

    def _record_run(self) -> None:
        """Params, tags and config once per run; a failure here ends the new run FAILED."""
        params = self._context.params
        try:
            tags = {**run_tags(params, self._context.project_path), HOST_TAG: socket.gethostname(),
                    PID_TAG: str(os.getpid()), RUN_ID_VARIABLE: os.environ.get(RUN_ID_VARIABLE, "")}
            log_run_record(self._client, self._run_id, params, tags)
        except Exception:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
            self._run_id = None
            raise

    def _count_parameters(self, values: Mapping[str, Any]) -> None:
        if self._counted:
            return
        for value in values.values():
            count = parameter_count(value)
            if count is not None:
                self._client.set_tag(self._run_id, MODEL_PARAMETERS_TAG, str(count))
                self._counted = True
                return

    def _log_model(self) -> None:
        """The model directory the catalog just saved, as the pyfunc ``model`` of the run."""
        from weighted_mtp.tracking.mlflow_model import DEFAULT_MAX_NEW_TOKENS, log_code_model

        dataset = self._catalog.get(BEST_MODEL_DATASET)
        if not hasattr(dataset, "local_directory"):
            log.warning("%s is a %s, not a model directory dataset: no MLflow model is logged",
                        BEST_MODEL_DATASET, type(dataset).__name__)
            return
        budget = (self._context.params.get("evaluation") or {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        with dataset.local_directory() as folder:
            log_code_model(folder, max_new_tokens=budget, register_as=self._options.register_as)

    def _upload_checkpoints(self, summary: Mapping[str, Any]) -> None:
        from weighted_mtp.tracking.artifacts import checkpoint_files, log_checkpoints

        files = checkpoint_files(summary, self._options.log_checkpoints, self._started)
        log_checkpoints(self._client, self._run_id, files, str(summary["stage"]))


class RankStopped(RuntimeError):
    """torchrun stopped this rank (SIGTERM), normally because another rank failed."""


class DistributedHooks:
    """torchrun: every rank runs the whole pipeline; this hook makes it one run.

    - catalog: on ranks > 0 every persisted dataset becomes read-only; after each save of
      one, all ranks wait at a barrier, so rank 0 writes each file once and the others then
      read that file (the tokenizer rank 0 trained, the stage-1 model rank 0 saved);
    - before the first node: join the process group (``training.distributed``);
    - at the end: leave it; after an error, without waiting for the others (their pending
      collectives fail, or torchrun stops them), and a SIGTERM from torchrun becomes an
      exception so Kedro's error hooks still run (the MLflow run ends FAILED).

    Without torchrun (``WORLD_SIZE`` unset or 1) it does nothing.
    """

    def __init__(self) -> None:
        self._context: Any = None
        self._persisted: frozenset[str] = frozenset()
        self._owned = False
        self._sigterm = StopSignals(_raise_rank_stopped, lambda: [signal.SIGTERM])

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Keep the context: the process group's settings come from its parameters."""
        self._context = context

    @hook_impl(trylast=True)
    def after_catalog_created(self, catalog: Any) -> None:
        """Note the persisted datasets; make them read-only on ranks > 0."""
        if not distributed.launched_distributed():
            self._persisted = frozenset()
            return
        self._persisted = persisted_names(catalog)
        if not distributed.is_main_process():
            make_read_only(catalog, self._persisted)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Join the process group before any node (and before the MLflow run starts)."""
        if not distributed.launched_distributed():
            return
        params = self._context.params  # ConfigHooks has validated them (tryfirst, registered last)
        settings = validate_block(DistributedConfig, params["training"].get("distributed", {}),
                                  "training.distributed")
        self._owned = distributed.init_distributed(settings.backend, settings.timeout_minutes,
                                                   params["models"]["policy"].get("device", "auto"))
        self._sigterm.catch()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """Rank 0 has written a file the other ranks may read next: wait for it."""
        if dataset_name in self._persisted:
            distributed.barrier()

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Leave the process group together."""
        self._leave(failed=False)

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Leave at once, with one line saying whether this rank failed or only lost a peer
        (torchrun's summary names the first failure as the root cause)."""
        if distributed.launched_distributed():
            rank, world = distributed.get_rank(), distributed.get_world_size()
            first_line = (str(error).splitlines() or [""])[0]
            if isinstance(error, RankStopped) or distributed.is_peer_failure(error):
                log.error("Rank %d of %d stopped because another rank failed; that rank's error is "
                          "the cause (torchrun prints it under 'Root Cause').", rank, world)
            else:
                log.error("Rank %d of %d failed: %s: %s", rank, world, type(error).__name__, first_line)
        self._leave(failed=True)

    def _leave(self, failed: bool) -> None:
        self._sigterm.restore()
        if self._owned:
            self._owned = False
            distributed.shutdown(failed=failed)


class RunStopped(RuntimeError):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run; raised where the run was, so the error
    hooks run and the MLflow run ends KILLED instead of staying RUNNING."""


class StopSignals:
    """Signals turned into exceptions for the length of a run, then the previous handlers
    back (Python delivers signals to the main thread only; elsewhere this does nothing).

    Args:
        raise_error: The handler: it raises the exception the hooks then see.
        signals: Which signals (a callable, as whether torchrun launched the run is known
            only when the run starts).
    """

    def __init__(self, raise_error: Any, signals: Any) -> None:
        self._raise_error, self._signals = raise_error, signals
        self._previous: dict[int, Any] = {}

    def catch(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in self._signals():
            self._previous[number] = signal.signal(number, self._raise_error)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def _raise_run_stopped(signum: int, frame: Any) -> None:
    raise RunStopped(f"the run was stopped by {signal.Signals(signum).name}")


def fail_abandoned_runs(client: MlflowClient, experiment_id: str, current_run_id: str) -> list[str]:
    """Mark as FAILED the runs of this experiment left RUNNING by a process of this machine
    that no longer exists (``kill -9``, a power cut): MLflow cannot tell them from live ones.

    Returns:
        The run ids marked.
    """
    host, marked = socket.gethostname(), []
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in running:
        tags = run.data.tags
        if run.info.run_id == current_run_id or tags.get(HOST_TAG) != host or not tags.get(PID_TAG):
            continue
        if _process_alive(int(tags[PID_TAG])):
            continue
        client.set_tag(run.info.run_id, "wmtp.ended_by", f"run {current_run_id}: its process {tags[PID_TAG]} was gone")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        marked.append(run.info.run_id)
        log.warning("MLflow run %s was left RUNNING by process %s, which no longer exists: marked FAILED",
                    run.info.run_id, tags[PID_TAG])
    return marked


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _raise_rank_stopped(signum: int, frame: Any) -> None:
    raise RankStopped(
        f"rank {distributed.get_rank()} was stopped by torchrun (SIGTERM), normally because "
        "another rank failed: its error is the 'Root Cause' torchrun prints.")


def mlflow_conf(loaded: Mapping[str, Any], options: TrackingOptions, project_path: Any) -> dict[str, Any]:
    """mlflow.yml as kedro-mlflow should see it for this run.

    The experiment name comes from the parameters; the tracking URI is resolved
    (mlflow.yml, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``) with a relative
    sqlite file anchored at the project; a new experiment in a local store keeps its
    artifacts next to the database rather than in the working directory. The credentials
    entry is left out: :func:`export_credentials` exports it (the plugin would also export
    empty values, wiping MLflow's own variables).
    """
    conf = copy.deepcopy(dict(loaded))
    server = conf.setdefault("server", {})
    server["credentials"] = None
    uri = resolve_tracking_uri(server.get("mlflow_tracking_uri"), project_path)
    server["mlflow_tracking_uri"] = uri
    experiment = conf.setdefault("tracking", {}).setdefault("experiment", {})
    experiment["name"] = options.experiment_name
    location = local_artifact_location(uri, options.experiment_name)
    create = experiment.setdefault("create_experiment_kwargs", {})
    if location and not create.get("artifact_location"):
        create["artifact_location"] = location
    return conf


def export_credentials(context: Any, conf: Mapping[str, Any]) -> None:
    """Put ``credentials.yml[server.credentials]`` into the environment, as kedro-mlflow
    does, but before the server check, without empty values (an unset ``${oc.env:...}``
    leaves MLflow's own variables alone) and with an error when the entry is missing.

    Raises:
        RuntimeError: When mlflow.yml names a credentials entry the env does not have.
    """
    key = (conf.get("server") or {}).get("credentials")
    if not key:
        return
    try:
        credentials = context.config_loader["credentials"]
    except MissingConfigException:
        credentials = {}
    if key not in credentials:
        raise RuntimeError(
            f"mlflow.yml sets server.credentials: {key!r} but no credentials.yml of env "
            f"{context.env or 'local'!r} (or base) has that entry. Note: conf/local is only read "
            "without --env; conf/base/credentials.yml is read by every env (values from "
            "${oc.env:...}), or use MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD."
        )
    for name, value in (credentials[key] or {}).items():
        if value is not None and str(value) != "":
            os.environ[str(name)] = str(value)


def _loaded_mlflow_yml(context: Any) -> Mapping[str, Any]:
    """mlflow.yml of the env merged over base; {} (kedro-mlflow's defaults) when absent."""
    try:
        return context.config_loader["mlflow"]
    except MissingConfigException:
        return {}
