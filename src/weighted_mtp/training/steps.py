"""What each stage optimises, and one optimisation step.

An :class:`Objective` is the stage's loss recipe, derived once from the config (docs/METHOD.md
table). :func:`accumulate_batch` computes that loss on one micro-batch — head by head, so
only one ``(B, S, V)`` logits tensor is alive at a time — and adds token sums to a
:class:`LossSums`. Training (:func:`train_step`, with backward) and validation
(:mod:`~weighted_mtp.training.evaluate`, under ``no_grad``) share this code, so the
validation loss is by construction the training objective.

Per-head loss L_k = Σ w·ce·m_k / Σ m_k (docs/METHOD.md); the MTP loss is the mean of L_k over
heads with a valid target; the stage loss is ``weighted MTP + value_coef · value loss``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from weighted_mtp.config.recipes import recipe_of
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
from weighted_mtp.value_weighting import (
    build_weights,
    compute_gae_advantages,
    compute_td_errors,
)
from weighted_mtp.value_weighting.distributed import all_reduce_sum
from weighted_mtp.value_weighting.moments import masked_moments, mean_std_from_moments

STAGES = ("pretrain", "stage1", "stage2")


@dataclass(frozen=True)
class TDSettings:
    """TD-weighting options of stage 2 (``training.stage2``)."""

    beta: float
    gamma: float
    td_lambda: float
    initial_value: float
    clip_min: float
    clip_max: float
    normalize_mean: bool


@dataclass(frozen=True)
class Objective:
    """The loss one stage optimises.

    Attributes:
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        train_ce: The MTP cross-entropy is part of the loss.
        train_value: The value loss is part of the loss (with ``value_coef``).
        report_value: Compute the value loss for reporting even when it is not trained.
        value_coef: Weight of the value loss in the total.
        weighting: ``"uniform"``, ``"td"`` or ``"rho1"``.
        ce_rows: ``"all"`` or ``"correct"``: rows whose tokens enter the CE.
        value_rows: ``"all"`` or ``"correct"``: rows whose states enter the value loss.
        value_loss_kind: ``"mse"`` or ``"huber"``.
        huber_delta: Huber threshold.
        freeze_trunk: The trunk gets no gradient (stage 1 critic with a frozen trunk).
        td: TD settings when ``weighting == "td"``.
        k_percent: Fraction of tokens kept by rho-1 selection.
        loss_heads: The first heads whose CE is the loss (None: all); 1 trains next-token
            prediction alone, the other heads receive no gradient.
        value_target: ``"outcome"`` (every state regresses to R) or ``"first_error"``
            (:func:`~weighted_mtp.training.losses.first_error_targets`).
    """

    stage: str
    train_ce: bool
    train_value: bool
    report_value: bool
    value_coef: float
    weighting: str = "uniform"
    ce_rows: str = "all"
    value_rows: str = "all"
    value_loss_kind: str = "mse"
    huber_delta: float = 1.0
    freeze_trunk: bool = False
    td: TDSettings | None = None
    k_percent: float = 1.0
    loss_heads: int | None = None
    value_target: str = "outcome"

    def n_loss_heads(self, n_future_tokens: int) -> int:
        """How many heads (from head 0) enter the CE of a model with ``n_future_tokens``."""
        if self.loss_heads is None:
            return n_future_tokens
        if self.loss_heads > n_future_tokens:
            raise ValueError(f"training.{self.stage}.loss_heads is {self.loss_heads} but the model has "
                             f"{n_future_tokens} heads (n_future_tokens)")
        return self.loss_heads


def objective_for(stage: str, config: Any) -> Objective:
    """Build the stage's :class:`Objective` from a ``RunConfig`` (docs/TRAINING.md, "Recipes").

    - pretrain: uniform MTP CE on every row.
    - stage1, recipe rho1: the reference model's MTP CE on correct rows.
    - stage1, other recipes: the value loss (``training.stage1.loss``) on ``train_on`` rows.
    - stage2: ``weighting`` MTP CE on ``train_on`` rows + ``value_coef`` · value loss on all.

    Raises:
        ValueError: For an unknown stage.
    """
    if stage == "pretrain":
        return Objective(stage, train_ce=True, train_value=False, report_value=False, value_coef=0.0)
    if stage == "stage1":
        return _stage1_objective(config)
    if stage == "stage2":
        return _stage2_objective(config.training.stage2)
    raise ValueError(f"Unknown stage {stage!r}; expected one of {STAGES}.")


def _stage1_objective(config: Any) -> Objective:
    cfg = config.training.stage1
    if recipe_of(config).needs_reference:
        return Objective("stage1", train_ce=True, train_value=False, report_value=False,
                         value_coef=0.0, ce_rows="correct")
    return Objective(
        "stage1", train_ce=False, train_value=True, report_value=True, value_coef=1.0,
        value_rows=cfg.train_on, value_loss_kind=cfg.loss, huber_delta=cfg.huber_delta,
        freeze_trunk=cfg.freeze_trunk, value_target=getattr(cfg, "value_target", "outcome"),
    )


def td_settings(cfg: Any) -> TDSettings:
    """The TD-weighting options of a ``training.stage2`` config block."""
    return TDSettings(
        beta=cfg.beta, gamma=cfg.gamma, td_lambda=cfg.td_lambda, initial_value=cfg.initial_value,
        clip_min=cfg.weight_clip_min, clip_max=cfg.weight_clip_max,
        normalize_mean=cfg.normalize_mean,
    )


def _stage2_objective(cfg: Any) -> Objective:
    td = td_settings(cfg)
    return Objective(
        "stage2", train_ce=True, train_value=cfg.value_coef > 0, report_value=True,
        value_coef=cfg.value_coef, weighting=cfg.weighting, ce_rows=cfg.train_on,
        value_loss_kind=cfg.value_loss, huber_delta=getattr(cfg, "huber_delta", 1.0),
        td=td if cfg.weighting == "td" else None, k_percent=cfg.k_percent,
        loss_heads=getattr(cfg, "loss_heads", None), value_target=getattr(cfg, "value_target", "outcome"),
    )


class LossSums:
    """Token-weighted sums of one step or one evaluation, in one fp64 vector.

    Means are formed only at the end (Σ loss / Σ tokens), so micro-batches, evaluation
    batches and — through :meth:`all_reduce` — ranks of different sizes combine exactly
    instead of as a mean of means. One vector means one host sync and one collective.
    """

    _EXTRA = ("value_sum", "value_count", "w_sum", "w_sq", "w_count", "w_low", "w_high", "tokens",
              "td_sum", "td_sq", "td_count")

    def __init__(self, n_heads: int, device: torch.device | str = "cpu") -> None:
        self.n_heads = n_heads
        self.buffer = torch.zeros(3 * n_heads + len(self._EXTRA), dtype=torch.float64, device=device)
        self.has_weights = False
        self.has_td = False

    def _slot(self, name: str) -> int:
        return 3 * self.n_heads + self._EXTRA.index(name)

    def add(self, name: str, value: torch.Tensor | float) -> None:
        """Add to an extra slot (``value_sum``, ``w_sum``, ``tokens``, …)."""
        self.buffer[self._slot(name)] += _as_f64(value)

    def add_head(self, head: int, weighted_sum: Any, unweighted_sum: Any, n_tokens: Any) -> None:
        """Add one head's Σ w·ce, Σ ce and token count."""
        self.buffer[head] += _as_f64(weighted_sum)
        self.buffer[self.n_heads + head] += _as_f64(unweighted_sum)
        self.buffer[2 * self.n_heads + head] += _as_f64(n_tokens)

    def add_weights(self, weights: torch.Tensor, valid: torch.Tensor, clip: tuple[float, float] | None) -> None:
        """Add the statistics of token weights over the ``valid`` positions."""
        self.has_weights = True
        mask = valid.bool()
        w = weights.detach().double()[mask]
        self.add("w_sum", w.sum())
        self.add("w_sq", (w * w).sum())
        self.add("w_count", w.numel())
        if clip is not None:
            low, high = clip
            self.add("w_low", (w <= low * (1 + 1e-6)).sum())
            self.add("w_high", (w >= high * (1 - 1e-6)).sum())

    def add_td(self, x: torch.Tensor, valid: torch.Tensor) -> None:
        """Add the moments of the TD errors (or GAE advantages) over the ``valid`` positions,
        before whitening: their raw scale says whether the critic's errors shrink."""
        self.has_td = True
        x = x.detach().double()[valid.bool()]
        self.add("td_sum", x.sum())
        self.add("td_sq", (x * x).sum())
        self.add("td_count", x.numel())

    def all_reduce(self) -> None:
        """Sum over ranks (identity without a multi-rank process group)."""
        self.buffer = all_reduce_sum(self.buffer)

    def totals(self) -> dict[str, Any]:
        """Host copy: ``{"weighted": [...], "unweighted": [...], "head_tokens": [...], extras}``."""
        values = self.buffer.tolist()
        n = self.n_heads
        totals: dict[str, Any] = {
            "weighted": values[:n], "unweighted": values[n : 2 * n], "head_tokens": values[2 * n : 3 * n]
        }
        totals.update(dict(zip(self._EXTRA, values[3 * n :])))
        return totals


def _as_f64(value: torch.Tensor | float) -> torch.Tensor | float:
    return value.detach().double() if isinstance(value, torch.Tensor) else float(value)


def summarize(sums: LossSums, objective: Objective) -> dict[str, float]:
    """Turn sums into figures: ``head{k}_loss``, ``mtp_loss``, ``weighted_mtp_loss``,
    ``value_loss``, ``loss``, ``tokens`` (input tokens seen),
    ``weights/{mean,std,clipped_low,clipped_high,ess}`` and ``td/{mean,std}``.

    ``head{k}_loss`` and ``mtp_loss`` are the plain (unweighted) CE, comparable across
    recipes; ``weighted_mtp_loss`` is what the stage optimises.
    """
    totals = sums.totals()
    figures: dict[str, float] = {}
    if objective.train_ce:
        figures.update(_ce_figures(totals))
    loss = figures.get("weighted_mtp_loss", 0.0)
    if objective.train_value or objective.report_value:
        count = totals["value_count"]
        figures["value_loss"] = totals["value_sum"] / count if count else 0.0
        if objective.train_value:
            loss += objective.value_coef * figures["value_loss"]
    figures["loss"] = loss
    figures["tokens"] = totals["tokens"]
    if sums.has_weights:
        figures.update(_weight_figures(totals))
    if sums.has_td:
        figures.update(_td_figures(totals))
    return figures


def _ce_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    weighted, unweighted = [], []
    for k, (w_sum, u_sum, n) in enumerate(zip(totals["weighted"], totals["unweighted"], totals["head_tokens"])):
        if n > 0:
            figures[f"head{k}_loss"] = u_sum / n
            weighted.append(w_sum / n)
            unweighted.append(u_sum / n)
    figures["mtp_loss"] = sum(unweighted) / len(unweighted) if unweighted else 0.0
    figures["weighted_mtp_loss"] = sum(weighted) / len(weighted) if weighted else 0.0
    return figures


def _weight_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    count = totals["w_count"]
    if count == 0:
        return {"weights/mean": 0.0, "weights/std": 0.0, "weights/clipped_low": 0.0,
                "weights/clipped_high": 0.0, "weights/ess": 0.0}
    mean = totals["w_sum"] / count
    var = max(0.0, totals["w_sq"] / count - mean * mean) * count / max(count - 1, 1)
    return {
        "weights/mean": mean,
        "weights/std": math.sqrt(var),
        "weights/clipped_low": totals["w_low"] / count,
        "weights/clipped_high": totals["w_high"] / count,
        "weights/ess": _ess_fraction(totals["w_sum"], totals["w_sq"], count),
    }


def _ess_fraction(w_sum: float, w_sq: float, count: float) -> float:
    """Kish's effective sample size (Σw)² / Σw² as a fraction of the ``count`` tokens.

    1 means uniform weights; a small value means a few tokens carry the gradient, the
    failure mode a too-small β produces. 0 when every weight is 0.
    """
    return (w_sum * w_sum) / (w_sq * count) if w_sq > 0 else 0.0


def _td_figures(totals: Mapping[str, Any]) -> dict[str, float]:
    count = totals["td_count"]
    if count == 0:
        return {"td/mean": 0.0, "td/std": 0.0}
    mean = totals["td_sum"] / count
    var = max(0.0, totals["td_sq"] / count - mean * mean) * count / max(count - 1, 1)
    return {"td/mean": mean, "td/std": math.sqrt(var)}


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
    td: TDSettings,
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
    return build_weights(x, weight_mask, td.beta, td.clip_min, td.clip_max, mean=mean, std=std,
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
    if not (objective.train_value or objective.report_value or objective.td is not None):
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
    if objective.td is None or values is None:
        return None
    weight_mask = (labels != IGNORE_INDEX).to(batch["loss_mask"].dtype)  # loss_mask ∧ train_on rows
    weights = td_weights(values, batch, objective.td, weight_mask, ema, sums)
    sums.add_weights(weights, weight_mask, (objective.td.clip_min, objective.td.clip_max))
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
