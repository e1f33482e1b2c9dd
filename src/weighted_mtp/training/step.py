"""One optimisation step: the stage loss of a micro-batch, head by head, and the update.

:func:`accumulate_batch` computes the :class:`~weighted_mtp.training.objective.Objective`'s
loss on one micro-batch — head by head, so only one ``(B, S, V)`` logits tensor is alive at
a time — and adds token sums to a :class:`~weighted_mtp.training.sums.LossSums`. Training
(:func:`train_step`, with backward) and validation (:mod:`~weighted_mtp.training.evaluate`,
under ``no_grad``) share this code, so the validation loss is by construction the training
objective.

Per-head loss L_k = Σ w·ce·m_k / Σ m_k (docs/METHOD.md); the MTP loss is the mean of L_k over
heads with a valid target; the stage loss is ``weighted MTP + value_coef · value loss``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from weighted_mtp.data import IGNORE_INDEX
from weighted_mtp.models import backward_per_head
from weighted_mtp.runtime.distributed import is_distributed
from weighted_mtp.runtime.parallel import grad_norm_value, sync_gradients
from weighted_mtp.training.losses import (
    first_error_targets,
    mtp_head_loss,
    rho1_excess,
    rho1_select,
    value_loss,
    value_state_mask,
)
from weighted_mtp.training.objective import Objective
from weighted_mtp.training.sums import LossSums, summarize
from weighted_mtp.value_weighting import (
    build_weights,
    compute_gae_advantages,
    compute_td_errors,
)
from weighted_mtp.value_weighting.distributed import all_reduce_sum
from weighted_mtp.value_weighting.moments import masked_moments, mean_std_from_moments


def rows_mask(batch: Mapping[str, torch.Tensor], rows: str) -> torch.Tensor:
    """(B,) bool: every row for ``"all"``, the correct ones for ``"correct"``."""
    if rows == "correct":
        return batch["is_correct"].bool()
    if rows == "all":
        return torch.ones_like(batch["is_correct"], dtype=torch.bool)
    raise ValueError(f"train_on must be 'all' or 'correct'; got {rows!r}.")


def ce_labels_for(batch: Mapping[str, torch.Tensor], objective: Objective) -> torch.Tensor:
    """Labels with the rows outside ``ce_rows`` set to -100, so they leave the CE entirely
    (numerator and token count) and the token weights' whitening statistics."""
    keep = rows_mask(batch, objective.ce_rows)[:, None]  # (B, 1)
    return batch["labels"].masked_fill(~keep, IGNORE_INDEX)


def td_weights(
    values: torch.Tensor,
    batch: Mapping[str, torch.Tensor],
    td: Any,
    weight_mask: torch.Tensor,
    ema: Any | None = None,
    sums: LossSums | None = None,
) -> torch.Tensor:
    """Token weights from the detached values (docs/METHOD.md): TD errors → optional GAE →
    whitening (batch or EMA statistics) → exp(z/β) → clip. Target-indexed ``(B, S)``.

    TD errors use every row's response (rows are independent); whitening statistics and
    the weights cover ``weight_mask``, the tokens the CE is computed on (the ``train_on``
    rows). Whitening over the weighted tokens keeps the weights centred on them: with
    ``train_on: correct``, statistics over all rows would lift every correct token's
    weight (correct rows end with δ_T = 1 − V > 0) and merely rescale the learning rate.
    ``sums``, when given, receives the raw TD statistics (:meth:`LossSums.add_td`).
    """
    x = compute_td_errors(values.detach(), batch["rewards"], batch["loss_mask"], gamma=td.gamma,
                          initial_value=td.initial_value, truncated=batch["truncated"])
    if td.td_lambda > 0:
        x = compute_gae_advantages(x, batch["loss_mask"], gamma=td.gamma, lam=td.td_lambda)
    if sums is not None:
        sums.add_td(x, weight_mask)
    if ema is not None:
        mean, std = ema.update(x, weight_mask)
    else:  # whiten with the global batch's statistics: every rank uses the same numbers
        mean, std = mean_std_from_moments(all_reduce_sum(masked_moments(x, weight_mask)))
    return build_weights(x, weight_mask, td.beta, td.weight_clip_min, td.weight_clip_max, mean=mean, std=std,
                         normalize_mean=td.normalize_mean)


def move_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Copy the batch's tensors to ``device`` (ids and strings stay on the host)."""
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def accumulate_batch(
    adapter: nn.Module,
    batch: Mapping[str, Any],
    objective: Objective,
    sums: LossSums,
    *,
    reference: nn.Module | None = None,
    ema: Any | None = None,
    explained_variance: Any | None = None,
    critic: Any | None = None,
    loss_scale: float = 1.0,
    backward: bool = False,
) -> None:
    """Compute the stage loss of one micro-batch, add its sums, and optionally backprop.

    With ``backward`` the heads go through :func:`~weighted_mtp.models.backward_per_head`
    (per-head forward/backward into a detached z, then one trunk backward together with
    ``value_coef · value loss``), each term scaled by ``loss_scale`` (1 / accumulation
    steps). Without it (validation) the heads run one by one under the caller's no_grad.

    Args:
        adapter: The model being trained (``MetaLlamaMTPAdapter``).
        batch: A collated batch already on the model's device.
        objective: The stage's objective.
        sums: Receives the token sums.
        reference: Frozen reference model (rho-1 weighting).
        ema: ``TDStatsEMA`` when whitening uses EMA statistics (training only).
        explained_variance: ``ExplainedVarianceAccumulator`` fed during validation.
        critic: ``CriticAccumulator`` fed with the values during validation.
        loss_scale: Multiplier of every backpropagated term.
        backward: Whether to backpropagate.
    """
    sums.add("tokens", batch["attention_mask"].sum())
    z = _trunk(adapter, batch["input_ids"], objective, backward)
    values = _values(adapter, z, objective, backward)
    if critic is not None and values is not None:
        critic.update(values.detach(), batch)
    extra = _value_term(values, batch, objective, sums, explained_variance, backward)
    if not objective.train_ce:
        if backward and extra is not None:
            (extra * loss_scale).backward()
        return
    labels = ce_labels_for(batch, objective)
    weights = _token_weights(values, batch, labels, objective, sums, ema)
    head_fn = _head_loss_fn(adapter, batch, labels, weights, objective, sums, reference, loss_scale)
    n_heads = objective.n_loss_heads(adapter.n_future_tokens)
    if backward:
        backward_per_head(adapter, z, head_fn, extra_loss=None if extra is None else extra * loss_scale,
                          n_heads=n_heads)
    else:
        for k in range(n_heads):
            head_fn(k, adapter.head_logits(z, k))


def _trunk(adapter: nn.Module, input_ids: torch.Tensor, objective: Objective, backward: bool) -> torch.Tensor:
    """z (B,S,D); built without a graph when the trunk gets no gradient (frozen stage 1)."""
    needs_graph = backward and (objective.train_ce or not objective.freeze_trunk)
    with torch.set_grad_enabled(needs_graph):
        return adapter.trunk_forward(input_ids)


def _values(adapter: nn.Module, z: torch.Tensor, objective: Objective, backward: bool) -> torch.Tensor | None:
    """V (B,S): with a graph when the value loss is trained, else detached (weights, reports)."""
    if not objective.needs_values:
        return None
    if backward and objective.train_value:
        return adapter.values_from_trunk(z)
    with torch.no_grad():
        return adapter.values_from_trunk(z.detach())


def _value_term(
    values: torch.Tensor | None,
    batch: Mapping[str, Any],
    objective: Objective,
    sums: LossSums,
    explained_variance: Any | None,
    backward: bool,
) -> torch.Tensor | None:
    """Add the value-loss sums; return ``value_coef · loss`` when it is backpropagated."""
    if values is None or not (objective.train_value or objective.report_value):
        return None
    keep = rows_mask(batch, objective.value_rows)[:, None].to(batch["loss_mask"].dtype)
    mask = batch["loss_mask"] * keep  # (B, S)
    targets = None
    if objective.value_target == "first_error":
        targets = first_error_targets(batch["rewards"], batch["first_error"], mask.shape[1])
    result = value_loss(values, batch["rewards"], mask, kind=objective.value_loss_kind,
                        huber_delta=objective.huber_delta, targets=targets)
    sums.add("value_sum", result.sum)
    sums.add("value_count", result.count)
    if explained_variance is not None:
        explained_variance.update(values.detach(), batch["rewards"], value_state_mask(mask))
    if backward and objective.train_value:
        return objective.value_coef * result.loss
    return None


def _token_weights(
    values: torch.Tensor | None,
    batch: Mapping[str, Any],
    labels: torch.Tensor,
    objective: Objective,
    sums: LossSums,
    ema: Any | None,
) -> torch.Tensor | None:
    """TD weights (B,S) for ``weighting: td``; None for uniform and rho-1 (per head)."""
    if not objective.weights_tokens_by_td or values is None:
        return None
    weight_mask = (labels != IGNORE_INDEX).to(batch["loss_mask"].dtype)  # loss_mask ∧ train_on rows
    weights = td_weights(values, batch, objective.td, weight_mask, ema, sums)
    sums.add_weights(weights, weight_mask, (objective.td.weight_clip_min, objective.td.weight_clip_max))
    return weights


def _head_loss_fn(
    adapter: nn.Module,
    batch: Mapping[str, Any],
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    objective: Objective,
    sums: LossSums,
    reference: nn.Module | None,
    loss_scale: float,
):
    """The per-head callback: weighted CE of head k, its sums, and its share of the mean.

    Head k's loss enters the MTP mean with weight 1 / (heads with a valid target), so the
    per-head backward produces the gradient of the mean over heads.
    """
    valid = labels != IGNORE_INDEX
    n_heads = objective.n_loss_heads(adapter.n_future_tokens)
    counts = torch.stack([valid[:, k + 1 :].sum() for k in range(n_heads)]).tolist()
    n_active = max(1, sum(1 for count in counts if count > 0))
    z_ref = None
    if objective.weighting == "rho1" and reference is not None:
        with torch.no_grad():
            z_ref = reference.trunk_forward(batch["input_ids"])

    def head_loss(k: int, logits: torch.Tensor) -> torch.Tensor:
        head_weights = weights
        if z_ref is not None:
            head_weights = _rho1_weights(reference, z_ref, k, logits, labels, objective.k_percent, sums)
        result = mtp_head_loss(logits, labels, k + 1, weights=head_weights)
        sums.add_head(k, result.weighted_sum, result.unweighted_sum, result.n_tokens)
        if counts[k] == 0:
            return _no_target_loss(logits)
        return result.weighted * (loss_scale / n_active)

    return head_loss


def _no_target_loss(logits: torch.Tensor) -> torch.Tensor:
    """The loss of a head without any target in this micro-batch: nothing to learn.

    In one process it is a constant (no backward through the head). Under torchrun it is
    a zero still attached to the head's graph, so the head's backward runs on every rank:
    FSDP reduces each unit's gradient after its backward, and a rank that skipped it would
    leave the others waiting in that collective.
    """
    if is_distributed():
        return logits.sum() * 0.0
    return logits.new_zeros(())


def _rho1_weights(
    reference: nn.Module,
    z_ref: torch.Tensor,
    k: int,
    logits: torch.Tensor,
    labels: torch.Tensor,
    k_percent: float,
    sums: LossSums,
) -> torch.Tensor:
    """Rho-1 selection for head k: 1 on the top ``k_percent`` tokens by excess loss
    (policy CE − reference CE), 0 elsewhere; target-indexed (B,S)."""
    with torch.no_grad():
        excess, valid = rho1_excess(logits, reference.head_logits(z_ref, k), labels, k + 1)
        selected = rho1_select(excess, valid, k_percent)
    sums.add_weights(selected, valid, clip=None)
    return selected


def train_step(
    adapter: nn.Module,
    micro_batches: Sequence[Mapping[str, Any]],
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    max_grad_norm: float,
    device: torch.device,
    step: int,
    reference: nn.Module | None = None,
    ema: Any | None = None,
) -> dict[str, float]:
    """One optimizer step over ``len(micro_batches)`` accumulated micro-batches.

    Each micro-batch's loss is scaled by 1 / len(micro_batches); gradients are clipped to
    ``max_grad_norm``; non-finite losses or gradient norm abort *before* the update (see
    :func:`check_finite`), so the model and the checkpoints on disk stay as they were.

    Under torchrun every rank calls this with its own micro-batches: the gradients are
    averaged over ranks once, after the last backward (:func:`~weighted_mtp.runtime.parallel.sync_gradients`),
    and the returned figures are token-weighted over all ranks' micro-batches, so every
    rank gets the same figures and takes the same update.

    Args:
        adapter: The model being trained.
        micro_batches: Collated batches (host or device).
        objective: The stage objective.
        optimizer: Optimizer over the trainable parameters.
        scheduler: Stepped once after the update.
        max_grad_norm: Clip threshold of the global gradient norm.
        device: The model's device.
        step: Global step this update becomes (1-based), for error messages.
        reference: Rho-1 reference model.
        ema: TD-statistics EMA.

    Returns:
        The step's figures: the losses of :func:`summarize`, ``grad_norm`` (before
        clipping), ``lr`` (used by this update) and ``tokens`` (input tokens processed).

    Raises:
        FloatingPointError: When a loss or the gradient norm is NaN or infinite.
    """
    sums = LossSums(adapter.n_future_tokens, device)
    for batch in micro_batches:
        accumulate_batch(adapter, move_to_device(batch, device), objective, sums, reference=reference,
                         ema=ema, loss_scale=1.0 / len(micro_batches), backward=True)
    sums.all_reduce()  # the step's figures over the global batch (identity for one process)
    figures = summarize(sums, objective)
    params = [param for group in optimizer.param_groups for param in group["params"]]
    sync_gradients(params, adapter)  # average over ranks once per step, before clipping
    figures["grad_norm"] = grad_norm_value(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    figures["lr"] = float(optimizer.param_groups[0]["lr"])
    if ema is not None:  # the statistics this step whitened with
        figures["td/ema_mean"], figures["td/ema_std"] = float(ema.mean), float(ema.std)
    check_finite(figures, objective.stage, step)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return figures


def check_finite(figures: Mapping[str, float], stage: str, step: int) -> None:
    """Raise when a loss or the gradient norm of a step is NaN or infinite.

    Raises:
        FloatingPointError: Naming the stage, the global step and the first bad figure
            (per-head losses first, so the message points at the origin).
    """
    order = sorted(k for k in figures if k.startswith("head")) + [
        "mtp_loss", "weighted_mtp_loss", "value_loss", "loss", "grad_norm"]
    for key in order:
        value = figures.get(key)
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(
                f"[{stage}] non-finite {key} = {value} at global step {step}; the update was "
                "not applied and checkpoints on disk are untouched (the best one is still "
                "loadable). Lower the learning rate or max_grad_norm, or check the data."
            )


def trainable_parameters(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
    """``(name, param)`` of the parameters with ``requires_grad``."""
    return [(name, param) for name, param in model.named_parameters() if param.requires_grad]
