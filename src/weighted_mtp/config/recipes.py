"""What each recipe is, in one table, and the config checks that follow from it.

A recipe is a promise about what stage 1 trains and how stage 2 weights tokens. The keys
that implement it (``training.stage2.weighting``, ``training.stage1.enabled``,
``value_coef``, ``loss_heads``) are ordinary config keys a user can override, so a config
can contradict its recipe — ``--env verifiable`` with ``weighting: rho1`` would run a
rho-1 experiment logged as "verifiable". Such a config is an error, reported with the
other validation problems (docs/TRAINING.md, "Recipes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STAGE1_CRITIC = "critic"
STAGE1_REFERENCE = "reference"

# The validation figures ``training.monitor`` may name: losses, since the best checkpoint is
# the one with the lowest value (training/best_tracker.py). The CE figures exist in stages
# with a CE, ``val_value_loss`` in stages with a value loss (training/sums.py, ``summarize``).
CE_MONITORS = ("val_mtp_loss", "val_weighted_mtp_loss")
MONITORS = ("val_loss", *CE_MONITORS, "val_value_loss")
HEAD_MONITOR = re.compile(r"val_head(\d+)_loss")


@dataclass(frozen=True)
class Recipe:
    """One row of :data:`RECIPES`.

    Attributes:
        weighting: The ``training.stage2.weighting`` the recipe trains with.
        stage1: What stage 1 trains: :data:`STAGE1_CRITIC` (the value head),
            :data:`STAGE1_REFERENCE` (a copy of the policy, rho-1's reference) or None
            (no stage 1).
        trains_value: Stage 2 trains the value head (``value_coef`` > 0).
        loss_heads: The ``training.stage2.loss_heads`` it needs (None: every head).
        summary: One line for docs and errors.
    """

    weighting: str
    stage1: str | None
    trains_value: bool
    loss_heads: int | None
    summary: str

    @property
    def needs_critic(self) -> bool:
        return self.stage1 == STAGE1_CRITIC

    @property
    def needs_reference(self) -> bool:
        return self.stage1 == STAGE1_REFERENCE


RECIPES: dict[str, Recipe] = {
    "baseline": Recipe("uniform", None, False, None, "uniform MTP CE on correct solutions"),
    "verifiable": Recipe("td", STAGE1_CRITIC, True, None,
                         "a critic in stage 1, TD-weighted MTP CE + value loss in stage 2"),
    "rho1": Recipe("rho1", STAGE1_REFERENCE, False, None,
                   "a reference model in stage 1, MTP CE on the top-k% excess-loss tokens"),
    "next_token": Recipe("uniform", None, False, 1, "next-token CE (head 0 alone) on correct solutions"),
}


def recipe_of(config: Any) -> Recipe:
    """The :class:`Recipe` of a validated config (``project.recipe``)."""
    return RECIPES[config.project.recipe]


def recipe_contradictions(config: Any) -> list[str]:
    """Every way ``config`` (a ``RunConfig`` whose fields are valid) contradicts its recipe,
    as ``key: message`` lines.

    Stage 1 may be switched off (``training.stage1.enabled: false``) for a recipe that has
    one — a critic then learns in stage 2 only, a reference comes from
    ``models.reference.path`` — but not switched on for a recipe that has none.
    """
    name = config.project.recipe
    recipe = RECIPES[name]  # the schema accepts only the names of this table
    stage1, stage2 = config.training.stage1, config.training.stage2
    where = f"(project.recipe {name}: {recipe.summary})"
    errors = []
    if stage2.weighting != recipe.weighting:
        errors.append(f"training.stage2.weighting: recipe {name} weights with {recipe.weighting!r}, "
                      f"found {stage2.weighting!r} {where}; choose the recipe with --env instead")
    if stage1.enabled and recipe.stage1 is None:
        errors.append(f"training.stage1.enabled: recipe {name} has no stage 1, found true {where}")
    if (stage2.value_coef > 0) != recipe.trains_value:
        wanted = "> 0" if recipe.trains_value else "0"
        errors.append(f"training.stage2.value_coef: must be {wanted} for recipe {name}, "
                      f"found {stage2.value_coef} {where}")
    if stage2.loss_heads != recipe.loss_heads:
        wanted = "null (every head)" if recipe.loss_heads is None else recipe.loss_heads
        errors.append(f"training.stage2.loss_heads: must be {wanted} for recipe {name}, "
                      f"found {stage2.loss_heads} {where}")
    if recipe.needs_reference and not stage1.enabled and not config.models.reference.path:
        errors.append(f"training.stage1.enabled: recipe {name} needs a reference model: enable "
                      f"stage 1 or set models.reference.path {where}")
    return errors


@dataclass(frozen=True)
class _StageFigures:
    """Which validation losses a stage reports, and the key that switches it off."""

    name: str
    switch: str | None
    ce: bool
    value: bool

    @property
    def reported(self) -> str:
        return ", ".join(["val_loss"] + (["val_mtp_loss", "val_weighted_mtp_loss", "val_head<k>_loss"]
                                         if self.ce else []) + (["val_value_loss"] if self.value else []))


def _stages_run(config: Any) -> list[_StageFigures]:
    """The stages a full run of ``config`` trains, each validated with ``training.monitor``."""
    training, recipe = config.training, recipe_of(config)
    stages = []
    if config.models.policy.create_micro and training.pretrain.enabled:  # warms a generated micro model up
        stages.append(_StageFigures("pretrain", "training.pretrain.enabled", ce=True, value=False))
    if training.stage1.enabled and recipe.stage1 is not None:
        stages.append(_StageFigures(f"stage 1 (the {recipe.stage1})", "training.stage1.enabled",
                                    ce=recipe.needs_reference, value=recipe.needs_critic))
    stages.append(_StageFigures("stage 2", None, ce=True, value=True))
    return stages


def monitor_contradictions(config: Any) -> list[str]:
    """Every stage of ``config`` that would not report ``training.monitor``, as ``key: message``
    lines (a ``RunConfig`` whose fields are valid, so the monitor is one of :data:`MONITORS`
    or ``val_head<k>_loss``).

    One monitor serves every stage, so a figure one stage lacks (verifiable stage 1 trains
    the critic alone: no CE) would stop that stage at its first validation.
    """
    monitor, name = config.training.monitor, config.project.recipe
    head = HEAD_MONITOR.fullmatch(monitor)
    needs_ce, needs_value = monitor in CE_MONITORS or head is not None, monitor == "val_value_loss"
    errors = []
    for stage in _stages_run(config):
        if (needs_ce and not stage.ce) or (needs_value and not stage.value):
            off = f", or set {stage.switch}: false" if stage.switch else ""
            errors.append(f"training.monitor: {stage.name} of recipe {name} reports no {monitor} (only "
                          f"{stage.reported}) and the monitor serves every stage; monitor val_loss{off}")
    if head is not None:
        errors += _head_monitor_problems(config, int(head.group(1)))
    return errors


def _head_monitor_problems(config: Any, k: int) -> list[str]:
    policy, loss_heads = config.models.policy, config.training.stage2.loss_heads
    errors = []
    if policy.create_micro and k >= policy.micro.n_future_tokens:
        errors.append(f"training.monitor: val_head{k}_loss needs head {k}, the micro model has heads "
                      f"0..{policy.micro.n_future_tokens - 1} (models.policy.micro.n_future_tokens)")
    if loss_heads is not None and k >= loss_heads:
        errors.append(f"training.monitor: stage 2 computes the CE of heads 0..{loss_heads - 1} only "
                      f"(training.stage2.loss_heads: {loss_heads}), so it reports no val_head{k}_loss; "
                      "monitor val_loss")
    return errors
