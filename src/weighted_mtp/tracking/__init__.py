"""Experiment tracking in MLflow, Kedro-free (docs/MLFLOW.md).

- :mod:`.options`: what the ``mlflow`` parameters and the environment ask for.
- :mod:`.backend`: :class:`~.backend.MlflowBackend`, the metrics logger's MLflow
  destination (a background thread sending batches, so training never waits on the server).
- :mod:`.attach`: the backend for the run the Kedro hook started, if any.
- :mod:`.server`: tracking URI handling and the fail-fast server check.
- :mod:`.run_record`: params, tags and config of a run.
- :mod:`.artifacts`: checkpoints and the token-weight histogram.
- :mod:`.mlflow_model`: the best model as an MLflow ``pyfunc`` model that generates code
  (``pyfunc_entry.py`` is its code file).
- :mod:`.plots`: PNG figures (matplotlib, Agg, no pyplot state).

Only ``weighted_mtp.hooks`` wires this into Kedro. Importing this package does not import
MLflow (about 3 s); the submodules that need it import it themselves.
"""
