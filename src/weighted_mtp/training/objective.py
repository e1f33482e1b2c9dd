"""What a stage optimises: the one thing that differs between pretrain, stage 1 and stage 2.

The trainer (:mod:`~weighted_mtp.training.trainer`) is the same for every stage; an
:class:`Objective` says which loss it computes and, through it, which parameters train
(docs/TRAINING.md, "Recipes"; docs/METHOD.md for the formulas):

==========================  =====================================  ========================
stage                       loss                                   parameters that train
==========================  =====================================  ========================
pretrain                    uniform MTP CE on every row            trunk, heads
stage1, recipe with critic  value loss on ``train_on`` rows        value head (+ trunk
                                                                   unless ``freeze_trunk``)
stage1, rho1                MTP CE on correct rows (a reference)   trunk, heads
stage2                      ``weighting`` MTP CE on ``train_on``   trunk, heads (+ value
                            rows + value_coef · value loss         head when value_coef > 0)
==========================  =====================================  ========================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from weighted_mtp.config.recipes import RECIPES

STAGES = ("pretrain", "stage1", "stage2")


@dataclass(frozen=True)
class Objective:
    """The loss one stage optimises, and so which parameters it trains.

    Attributes:
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        train_ce: The MTP cross-entropy is part of the loss.
        train_value: The value loss is part of the loss (with ``value_coef``).
        report_value: Compute the value loss and the critic's figures even when the value
            head is not trained.
        value_coef: Weight of the value loss in the total.
        weighting: ``"uniform"``, ``"td"`` or ``"rho1"``.
        ce_rows: ``"all"`` or ``"correct"``: rows whose tokens enter the CE.
        value_rows: ``"all"`` or ``"correct"``: rows whose states enter the value loss.
        value_loss_kind: ``"mse"`` or ``"huber"``.
        huber_delta: Huber threshold.
        freeze_trunk: The trunk gets no gradient (stage 1 critic with a frozen trunk).
        td: The ``training.stage2`` block whose TD settings (``beta``, ``gamma``, clips …)
            weight the CE when ``weighting == "td"`` and judge the critic in reports.
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
    td: Any | None = None
    k_percent: float = 1.0
    loss_heads: int | None = None
    value_target: str = "outcome"

    @property
    def weights_tokens_by_td(self) -> bool:
        return self.weighting == "td" and self.td is not None

    @property
    def needs_values(self) -> bool:
        return self.train_value or self.report_value or self.weights_tokens_by_td

    @property
    def trainable_parts(self) -> dict[str, bool]:
        """``{"trunk": …, "heads": …, "value_head": …}``: a CE trains trunk and heads; a
        value loss trains the value head, and the trunk unless it is frozen."""
        return {"trunk": self.train_ce or not self.freeze_trunk, "heads": self.train_ce,
                "value_head": self.train_value}

    def n_loss_heads(self, n_future_tokens: int) -> int:
        """How many heads (from head 0) enter the CE of a model with ``n_future_tokens``."""
        if self.loss_heads is None:
            return n_future_tokens
        if self.loss_heads > n_future_tokens:
            raise ValueError(f"training.{self.stage}.loss_heads is {self.loss_heads} but the model has "
                             f"{n_future_tokens} heads (n_future_tokens)")
        return self.loss_heads


def objective_for(stage: str, training: Any, recipe: str = "verifiable") -> Objective:
    """The :class:`Objective` of ``stage`` from the validated ``training`` block.

    Args:
        stage: ``"pretrain"``, ``"stage1"`` or ``"stage2"``.
        training: The ``training`` config block.
        recipe: ``project.recipe``; it decides what stage 1 trains (a critic or rho-1's
            reference model).

    Raises:
        ValueError: For an unknown stage.
    """
    if stage == "pretrain":
        return Objective(stage, train_ce=True, train_value=False, report_value=False, value_coef=0.0)
    stage2 = training.stage2
    if stage == "stage1":
        stage1 = training.stage1
        if RECIPES[recipe].needs_reference:
            return Objective(stage, train_ce=True, train_value=False, report_value=False,
                             value_coef=0.0, ce_rows="correct")
        return Objective(stage, train_ce=False, train_value=True, report_value=True, value_coef=1.0,
                         value_rows=stage1.train_on, value_loss_kind=stage1.loss,
                         huber_delta=stage1.huber_delta, freeze_trunk=stage1.freeze_trunk, td=stage2,
                         value_target=stage1.value_target)
    if stage == "stage2":
        return Objective(stage, train_ce=True, train_value=stage2.value_coef > 0, report_value=True,
                         value_coef=stage2.value_coef, weighting=stage2.weighting, ce_rows=stage2.train_on,
                         value_loss_kind=stage2.value_loss, td=stage2, k_percent=stage2.k_percent,
                         loss_heads=stage2.loss_heads, value_target=stage2.value_target)
    raise ValueError(f"Unknown stage {stage!r}; expected one of {STAGES}.")


def set_trainable(model: nn.Module, *, trunk: bool, heads: bool, value_head: bool) -> int:
    """Set ``requires_grad`` per part (trunk, heads incl. norm/output, value head).

    Frozen parameters get no gradient and no optimizer state, so a frozen-trunk stage 1
    costs only the value head's memory.

    Returns:
        The number of trainable parameter elements.

    Raises:
        ValueError: When nothing would train.
    """
    model.requires_grad_(False)
    parts = ((trunk, model.trunk_parameters), (heads, model.head_parameters),
             (value_head, model.value_head_parameters))
    for enabled, parameters in parts:
        if enabled:
            for param in parameters():
                param.requires_grad_(True)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count == 0:
        raise ValueError("set_trainable: no parameter left trainable.")
    return count
