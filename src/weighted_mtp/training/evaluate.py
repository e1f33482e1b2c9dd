"""Validation of a stage: the training objective on held-out data, token-weighted.

It runs the same per-batch loss code as training (:func:`~weighted_mtp.training.steps.accumulate_batch`)
so ``val_loss`` is exactly the objective being optimised, and accumulates sums, not means:
two batches of 10 and 1000 tokens count 10 and 1000, not one each. The sums are reduced
over ranks before dividing, so under torchrun every rank returns the global figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from weighted_mtp.training.losses import ExplainedVarianceAccumulator
from weighted_mtp.training.steps import LossSums, accumulate_batch, move_to_device, objective_for, summarize


def evaluate_stage(
    adapter: nn.Module,
    dataloader: Iterable[Mapping[str, Any]],
    config: Any,
    device: torch.device,
    stage: str,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Evaluate ``adapter`` on ``dataloader`` with the objective of ``stage``.

    Runs under ``no_grad`` in eval mode; the previous train/eval mode of ``adapter`` (and
    of ``reference``) is restored afterwards, even on error.

    Args:
        adapter: The model (for stage 1 of rho-1: the reference being trained).
        dataloader: Batches from ``MTPCollator``.
        config: The ``RunConfig``.
        device: The model's device.
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        reference: Rho-1 reference model; stage 2 with ``weighting: rho1`` weights the
            validation CE by its selection (without it the CE is uniform).

    Returns:
        ``val_loss`` (the objective: pretrain and rho-1 stage 1 MTP CE; verifiable stage 1
        the value loss; stage 2 weighted CE + value_coef · value loss),
        ``val_mtp_loss`` and ``val_head{k}_loss`` (plain CE), ``val_weighted_mtp_loss``,
        ``val_value_loss`` and ``val_value_explained_variance`` (when the stage has a value
        loss; NaN when all outcomes are equal), ``val_tokens``, and
        ``val_weights/...`` when the stage weights tokens.
    """
    objective = objective_for(stage, config)
    models = [m for m in (adapter, reference) if m is not None]
    modes = [m.training for m in models]
    sums = LossSums(adapter.n_future_tokens, device)
    explained = ExplainedVarianceAccumulator(device) if objective.report_value else None
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            for batch in dataloader:
                accumulate_batch(adapter, move_to_device(batch, device), objective, sums,
                                 reference=reference, explained_variance=explained)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
    sums.all_reduce()
    figures = {f"val_{key}": value for key, value in summarize(sums, objective).items()}
    if explained is not None:
        figures["val_value_explained_variance"] = explained.compute()
    return figures

