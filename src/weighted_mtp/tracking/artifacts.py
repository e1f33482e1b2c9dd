"""Checkpoint files a run uploads, and the token-weight histogram the stage-2 pipeline plots.

``mlflow.log_checkpoints`` decides the checkpoints: ``none`` (default: the run's model is
the MLflow model of :mod:`.mlflow_model`) uploads nothing, ``best`` each stage's
``checkpoint_{stage}_best.pt``, ``all`` every checkpoint file the stage wrote in this run.
A 7B checkpoint with optimizer state is tens of GB, hence the choice. A sharded run's
checkpoints are complete ``.dcp`` folders, uploaded as folders.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from weighted_mtp.data import IGNORE_INDEX, TokenizedDataset, resolve_pad_token_id
from weighted_mtp.runtime.device import resolve_device
from weighted_mtp.runtime.distributed import rank_local
from weighted_mtp.runtime.sharded_checkpoint import is_complete, is_sharded_checkpoint
from matplotlib.figure import Figure

from weighted_mtp.tracking.plots import weight_histogram
from weighted_mtp.training.objective import objective_for
from weighted_mtp.training.step import ce_labels_for, move_to_device, td_weights
from weighted_mtp.training.trainer import build_loader

log = logging.getLogger(__name__)


def checkpoint_files(summary: Mapping[str, Any], policy: str, since: float) -> list[Path]:
    """The checkpoint files of one stage to upload.

    Args:
        summary: The stage summary a training node returns (``stage``,
            ``best_checkpoint``, ``final_checkpoint``).
        policy: ``best``, ``all`` or ``none``.
        since: Run start (epoch seconds); under ``all`` older files in the folder, left by
            earlier runs, are not this run's and are skipped.

    Returns:
        Existing files, sorted.
    """
    if policy == "none" or summary.get("skipped"):
        return []
    best = summary.get("best_checkpoint")
    if policy == "best":
        return [Path(best)] if best and _is_checkpoint(Path(best)) else []
    anchor = best or summary.get("final_checkpoint")
    if not anchor:
        return []
    pattern = f"checkpoint_{summary.get('stage')}_*"
    return sorted(path for path in Path(anchor).parent.glob(pattern)
                  if _is_checkpoint(path) and path.stat().st_mtime >= since)


def _is_checkpoint(path: Path) -> bool:
    """A ``.pt`` file, or a sharded ``.dcp`` folder whose write finished."""
    return (path.suffix == ".pt" and path.is_file()) or (is_sharded_checkpoint(path) and is_complete(path))


def log_checkpoints(client: Any, run_id: str, files: Sequence[Path], stage: str) -> None:
    """Upload ``files`` under ``checkpoints/{stage}/`` (synchronously: at a stage's end)."""
    for path in files:
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        log.info("MLflow: uploading %s (%.1f MB) to run %s", path, size / 2**20, run_id)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), f"checkpoints/{stage}/{path.name}")
        else:
            client.log_artifact(run_id, str(path), f"checkpoints/{stage}")


def stage2_token_weights(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], training: Any, *, device: str,
    max_length: int, max_batches: int = 8,
) -> torch.Tensor | None:
    """Token weights the stage-2 objective gives validation tokens with the final value head.

    The weights of the ``train_on`` rows' response tokens, with per-batch whitening (the
    EMA state, if training used one, is not part of the model). Only ``weighting: td``
    has weights that depend on the model; None otherwise. Computed by one rank (the one
    that talks to MLflow) on all rows, without any collective.

    Args:
        model: The stage-2 ``MetaLlamaMTPAdapter`` (moved to the configured device for the
            forward passes, then back where it was).
        tokenizer: The tokenizer.
        records: Validation records.
        training: The ``training`` block (stage-2 settings, seed).
        device: ``models.policy.device``.
        max_length: ``dataset.max_length``.
        max_batches: Forward passes at most (stage-2 batch size each), to bound the cost
            on a large model.

    Returns:
        A 1-D float tensor of weights, or None when the recipe has no TD weights.
    """
    objective = objective_for("stage2", training)
    if not objective.weights_tokens_by_td:
        return None
    dataset = TokenizedDataset(records, tokenizer, max_length, drop_unlabelled=True)
    loader, _ = build_loader(dataset, training.stage2.batch_size, resolve_pad_token_id(tokenizer),
                             seed=training.seed, shuffle=False, evaluation=True, shard=False)
    home = next(model.parameters()).device
    device = resolve_device(device)
    was_training = model.training
    collected = []
    try:
        model.to(device).eval()
        with torch.no_grad(), rank_local():  # rank 0 alone plots: no collective
            for index, batch in enumerate(loader):
                if index >= max_batches:
                    break
                collected.append(_batch_weights(model, move_to_device(batch, device), objective))
    finally:
        model.to(home).train(was_training)
    return torch.cat(collected) if collected else torch.empty(0)


def _batch_weights(model: Any, batch: Mapping[str, Any], objective: Any) -> torch.Tensor:
    values = model.values_from_trunk(model.trunk_forward(batch["input_ids"]))  # (B, S)
    labels = ce_labels_for(batch, objective)
    mask = (labels != IGNORE_INDEX).to(batch["loss_mask"].dtype)  # CE tokens of train_on rows
    weights = td_weights(values, batch, objective.td, mask)
    return weights[mask.bool()].float().cpu()


def token_weight_histogram(model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], training: Any, *,
                           device: str, max_length: int) -> Figure:
    """The histogram of the TD weights ``model`` gives validation tokens (see
    :func:`stage2_token_weights`); for a recipe without TD weights, a figure that says so
    (the catalog always gets a figure, so the file never goes stale)."""
    weights = stage2_token_weights(model, tokenizer, records, training, device=device, max_length=max_length)
    stage2 = training.stage2
    if weights is None or weights.numel() == 0:
        figure = Figure(figsize=(6, 1.5))
        figure.text(0.5, 0.5, f"no TD token weights: stage 2 weighting is {stage2.weighting!r}",
                    ha="center", va="center")
        return figure
    title = f"stage 2 token weights: β={stage2.beta}, {weights.numel()} validation tokens"
    return weight_histogram(weights.tolist(), title, (stage2.weight_clip_min, stage2.weight_clip_max))
