"""Validation of a stage: the training objective on held-out data, token-weighted.

It runs the same per-batch loss code as training (:func:`~weighted_mtp.training.step.accumulate_batch`)
so ``val_loss`` is exactly the objective being optimised, and accumulates sums, not means:
two batches of 10 and 1000 tokens count 10 and 1000, not one each.

Under torchrun each rank evaluates its own shard (every row once, no padding rows), and the
sums are added over ranks before dividing, so every rank returns the figures one process
would compute on the whole set. Stage 2's TD whitening sums its statistics over the ranks'
batches of one round, like training; a rank whose shard has one batch fewer joins that
round with a batch in which nothing counts (the collectives must pair up).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from weighted_mtp.data import IGNORE_INDEX
from weighted_mtp.runtime.distributed import max_over_ranks
from weighted_mtp.training.critic_metrics import CriticAccumulator
from weighted_mtp.training.losses import ExplainedVarianceAccumulator
from weighted_mtp.training.objective import Objective
from weighted_mtp.training.step import accumulate_batch, move_to_device
from weighted_mtp.training.sums import LossSums, summarize


def evaluate_stage(
    adapter: nn.Module,
    dataloader: Iterable[Mapping[str, Any]],
    objective: Objective,
    device: torch.device,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Evaluate ``adapter`` on ``dataloader`` with a stage's ``objective``.

    Runs under ``no_grad`` in eval mode; the previous train/eval mode of ``adapter`` (and
    of ``reference``) is restored afterwards, even on error. Under torchrun every rank must
    call it (it reduces over ranks) with its own shard of the rows.

    Args:
        adapter: The model (for stage 1 of rho-1: the reference being trained).
        dataloader: Batches from ``MTPCollator`` (a ``DataLoader`` under torchrun, whose
            dataset provides a filler batch to a rank with fewer batches).
        objective: The stage's objective (:func:`~weighted_mtp.training.objective.objective_for`).
        device: The model's device.
        reference: Rho-1 reference model; stage 2 with ``weighting: rho1`` weights the
            validation CE by its selection (without it the CE is uniform).

    Returns:
        ``val_loss`` (the objective: pretrain and rho-1 stage 1 MTP CE; verifiable stage 1
        the value loss; stage 2 weighted CE + value_coef · value loss),
        ``val_mtp_loss`` and ``val_head{k}_loss`` (plain CE), ``val_weighted_mtp_loss``,
        ``val_value_loss`` and ``val_value_explained_variance`` (when the stage has a value
        loss; NaN when all outcomes are equal), ``val_tokens``, and
        ``val_weights/...`` when the stage weights tokens; with a value head, the critic
        figures of :func:`~weighted_mtp.training.critic_metrics.critic_figures`
        (``val_value_auroc``, ``val_value_auroc_within_problem``, ``val_bug_hit_rate``, …).
    """
    models = [m for m in (adapter, reference) if m is not None]
    modes = [m.training for m in models]
    sums = LossSums(adapter.n_future_tokens, device)
    explained = ExplainedVarianceAccumulator(device) if objective.report_value else None
    critic = CriticAccumulator(objective.td) if objective.report_value and objective.td is not None else None

    def add(batch: Mapping[str, Any]) -> None:
        accumulate_batch(adapter, move_to_device(batch, device), objective, sums,
                         reference=reference, explained_variance=explained, critic=critic)

    try:
        for model in models:
            model.eval()
        rounds = max_over_ranks(_length(dataloader))  # before any batch: collectives pair up
        with torch.no_grad():
            count, last = 0, None
            for batch in dataloader:
                add(batch)
                count, last = count + 1, batch
            for _ in range(rounds - count):
                add(filler_batch(dataloader, last))
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
    sums.all_reduce()
    figures = {f"val_{key}": value for key, value in summarize(sums, objective).items()}
    if explained is not None:
        figures["val_value_explained_variance"] = explained.compute()
    if critic is not None:
        figures.update({f"val_{key}": value for key, value in critic.compute().items()})
    return figures


def _length(dataloader: Iterable[Any]) -> int:
    """Batches in ``dataloader``; 0 for a plain iterable (fine in a single process, where
    no filler is ever needed)."""
    try:
        return len(dataloader)  # type: ignore[arg-type]
    except TypeError:
        return 0


def filler_batch(dataloader: Any, last: Mapping[str, Any] | None) -> dict[str, Any]:
    """A batch that runs the same computation (and collectives) but counts nothing: no
    labelled token, no response token, no input token.

    Args:
        dataloader: The rank's loader; its dataset's first row is used when the rank had
            no batch at all (fewer rows than ranks).
        last: The rank's last batch, or None.

    Raises:
        ValueError: When a filler is needed and ``dataloader`` is not a ``DataLoader``.
    """
    if last is None:
        if not hasattr(dataloader, "dataset") or getattr(dataloader, "collate_fn", None) is None:
            raise ValueError("evaluate_stage: this rank has fewer validation batches than another "
                             "one and needs a DataLoader (with .dataset and .collate_fn) to build "
                             f"a filler batch; got {type(dataloader).__name__}.")
        last = dataloader.collate_fn([dataloader.dataset[0]])
    return {
        **last,
        "labels": torch.full_like(last["labels"], IGNORE_INDEX),
        "loss_mask": torch.zeros_like(last["loss_mask"]),
        "attention_mask": torch.zeros_like(last["attention_mask"]),
    }
