"""The merged parameters as frozen pydantic models: structure, types, choices, ranges, rules.

Config enters the Kedro-free packages through one door: the validated params dict becomes
these models at the node boundary, so loops never read YAML or guess at missing keys.
The field names equal the YAML keys of ``conf/base/parameters.yml``. Every check lives on
the model that holds its keys: choices are ``Literal`` types, ranges are ``Field`` bounds,
and a rule that ties two keys together is a ``model_validator`` raising a ValueError of
``key: message`` lines, keys relative to the model (:mod:`weighted_mtp.config.validate`
adds the key path and lists every problem at once).

Strict: a string is not a bool, a bool or a float is not an int (an int is a float), and
nan/inf are rejected everywhere; an unknown key is an error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from weighted_mtp.config.recipes import HEAD_MONITOR, MONITORS, RECIPES, monitor_contradictions, recipe_contradictions

Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]       # [0, 1)
OpenFraction = Annotated[float, Field(gt=0, lt=1)]   # (0, 1)
Share = Annotated[float, Field(gt=0, le=1)]          # (0, 1]
Probability = Annotated[float, Field(ge=0, le=1)]    # [0, 1]
NonEmpty = Annotated[str, Field(min_length=1)]

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
RecipeName = Literal[tuple(RECIPES)]  # one source: the recipe table
ValueTarget = Literal["outcome", "first_error"]  # docs/METHOD.md, "Critic quality"
TrainOn = Literal["all", "correct"]
ValueLoss = Literal["mse", "huber"]


def refuse(problems: list[str]) -> None:
    """Raise a model rule's problems as one error, a ``key: message`` line each, relative to
    the model: :func:`weighted_mtp.config.validate.validate_block` turns each line into a full
    key path."""
    if problems:
        raise ValueError("\n".join(problems))


class Section(BaseModel):
    """A block of the parameters: frozen, strict, no unknown keys, finite floats."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ProjectConfig(Section):
    name: str
    recipe: RecipeName = "verifiable"
    experiment: str = "default"
    preset: Optional[str] = None
    """Set by the scale preset's own parameters file (conf/presets/<name>)."""
    checkpoint_dir: str = "data/06_models/checkpoints/default"

    @model_validator(mode="after")
    def _experiment_is_a_folder_name(self) -> ProjectConfig:
        # it names the run's folders (data/06_models/checkpoints/<experiment>,
        # data/08_reporting/<experiment>, ...): '../x' or 'a/b' would write elsewhere
        if not _FOLDER_NAME.fullmatch(self.experiment):
            raise ValueError(f"experiment: must be a plain folder name ([A-Za-z0-9._-], not starting with "
                             f"'.', so no '..'), found {self.experiment!r}; it names the run's folders "
                             "under data/06_models and data/08_reporting (set it with WMTP_EXPERIMENT)")
        return self


class MicroModelConfig(Section):
    dim: PositiveInt = 128
    n_layers: PositiveInt = 6
    n_heads: PositiveInt = 4
    n_kv_heads: Optional[PositiveInt] = 2
    """None: as many key/value heads as query heads (no grouping)."""
    n_future_tokens: PositiveInt = 4
    max_seq_len: PositiveInt = 512
    seed: int = 0

    @model_validator(mode="after")
    def _shapes_fit(self) -> MicroModelConfig:
        """The checks of ``models.args.ModelArgs``, reported before any model is built."""
        problems = []
        if self.n_future_tokens > self.n_layers:
            problems.append(f"n_future_tokens: must be <= n_layers, found {self.n_future_tokens} > {self.n_layers}")
        if self.dim % self.n_heads:
            problems.append(f"dim: must be divisible by n_heads, found {self.dim} / {self.n_heads}")
        elif self.dim // self.n_heads % 2:  # RoPE rotates pairs of channels
            problems.append(f"dim: dim / n_heads (the head width) must be even for RoPE, "
                            f"found {self.dim} / {self.n_heads} = {self.dim // self.n_heads}")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            problems.append(f"n_kv_heads: must divide n_heads (each key/value head serves a group of "
                            f"query heads), found {self.n_heads} / {self.n_kv_heads}")
        refuse(problems)
        return self


class PolicyModelConfig(Section):
    name: NonEmpty
    path: NonEmpty
    create_micro: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"
    value_head: Literal["linear", "mlp", "block"] = "linear"
    micro: MicroModelConfig = Field(default_factory=MicroModelConfig)


class ReferenceModelConfig(Section):
    name: str = "reference"
    path: Optional[str] = None


class ModelsConfig(Section):
    policy: PolicyModelConfig
    reference: ReferenceModelConfig = Field(default_factory=ReferenceModelConfig)


class DatasetConfig(Section):
    train: NonEmpty
    validation: NonEmpty
    name: str = "embedded-code"
    raw: Optional[str] = None
    tokenizer: Optional[str] = None
    test: Optional[str] = None
    """Held-out test problems (written by data_processing, read by evaluation)."""
    max_length: PositiveInt = 512
    validation_fraction: OpenFraction = 0.1
    test_fraction: OpenFraction = 0.3
    split_seed: int = 42
    max_solutions_per_problem: PositiveInt = 4
    tokenizer_vocab_size: PositiveInt = 4096


class MlflowConfig(Section):
    """Experiment tracking (docs/MLFLOW.md); the store itself is configured in mlflow.yml.

    ``experiment_name`` None means ``weighted-mtp/<project.recipe>``, derived after the
    recipe env and ``--params`` are merged (an interpolation in conf/base would freeze the
    base recipe); ``run_name`` None means ``WMTP_MLFLOW_RUN_NAME`` or ``<recipe>/<pipelines>``.
    """

    enabled: bool = True
    experiment_name: Optional[str] = None
    run_name: Optional[str] = None
    log_model: bool = True
    """Log the exported best model as the MLflow pyfunc model ``model`` of the run."""
    register_as: Optional[NonEmpty] = None
    """Also register that model under this name in the model registry (needs log_model)."""
    log_checkpoints: Literal["best", "all", "none"] = "none"
    """Training checkpoints (.pt, with optimizer state) uploaded as artifacts."""

    @model_validator(mode="after")
    def _register_needs_the_model(self) -> MlflowConfig:
        if self.register_as is not None and not self.log_model:
            raise ValueError(f"register_as: {self.register_as!r} registers the logged model, but log_model is false")
        return self

    @model_validator(mode="after")
    def _run_name_is_one_line(self) -> MlflowConfig:
        # a label in the MLflow UI and the logs, not a folder: '/' is fine (the default
        # name is <recipe>/<pipelines>), an empty or multi-line name is a mistake
        if self.run_name is not None and (not self.run_name.strip() or not self.run_name.isprintable()):
            raise ValueError(f"run_name: must be one line of printable text (null: the default name), "
                             f"found {self.run_name!r}")
        return self


class PretrainConfig(Section):
    enabled: bool = True
    n_epochs: Positive = 3.0
    learning_rate: Positive = 1e-3
    batch_size: PositiveInt = 8
    warmup_ratio: Fraction = 0.1


class Stage1Config(Section):
    enabled: bool = True
    n_epochs: Positive = 0.5
    learning_rate: Positive = 1e-4
    batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    warmup_ratio: Fraction = 0.1
    weight_decay: NonNegative = 0.0
    max_grad_norm: Positive = 1.0
    loss: ValueLoss = "mse"
    huber_delta: Positive = 1.0
    freeze_trunk: bool = True
    train_on: TrainOn = "all"
    value_target: ValueTarget = "outcome"


class TDEMAConfig(Section):
    enabled: bool = False
    momentum: Fraction = 0.99
    warmup_steps: NonNegativeInt = 10


class Stage2Config(Section):
    n_epochs: Positive = 2.5
    learning_rate: Positive = 1e-5
    batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    warmup_ratio: Fraction = 0.05
    weight_decay: NonNegative = 0.0
    max_grad_norm: Positive = 0.5
    weighting: Literal["td", "uniform", "rho1"] = "td"
    beta: Positive = 0.9
    gamma: Share = 1.0
    td_lambda: Probability = 0.0
    initial_value: float = 0.5
    value_coef: NonNegative = 0.5
    value_loss: ValueLoss = "mse"
    weight_clip_min: Positive = 0.1
    weight_clip_max: Positive = 5.0
    normalize_mean: bool = False
    td_ema: TDEMAConfig = Field(default_factory=TDEMAConfig)
    k_percent: Share = 0.6
    train_on: TrainOn = "correct"
    loss_heads: Optional[int] = Field(None, gt=0)  # null: every head; 1: next-token loss on head 0 alone
    value_target: ValueTarget = "outcome"

    @model_validator(mode="after")
    def _clip_range(self) -> Stage2Config:
        if self.weight_clip_min > self.weight_clip_max:
            raise ValueError(f"weight_clip_min: must be <= weight_clip_max, "
                             f"found {self.weight_clip_min} > {self.weight_clip_max}")
        return self


class DistributedConfig(Section):
    """Multi-process training under torchrun (docs/DISTRIBUTED.md)."""

    strategy: Literal["ddp", "fsdp"] = "ddp"           # fsdp: FSDP2 shards (CUDA/NCCL or CPU/gloo)
    backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: nccl on CUDA, gloo on CPU
    timeout_minutes: Positive = 30.0  # collective timeout: a rank that dies ends the others
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in the backward (less memory, ~1/3
    more compute); also applies to a single process."""


class TrainingConfig(Section):
    seed: int = 42
    log_interval: PositiveInt = 10
    eval_interval: PositiveInt = 100
    save_checkpoint_every: PositiveInt = 1
    save_every_steps: NonNegativeInt = 25
    """Steps between rolling ``checkpoint_<stage>_last.pt`` saves (0: none)."""
    keep_runs: Optional[PositiveInt] = None
    """Run folders kept under project.checkpoint_dir/runs (None: all)."""
    resume_from: Optional[str] = None
    monitor: str = "val_loss"
    patience: PositiveInt = 5
    early_stopping: bool = False
    num_workers: NonNegativeInt = 0
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    stage1: Stage1Config = Field(default_factory=Stage1Config)
    stage2: Stage2Config = Field(default_factory=Stage2Config)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @model_validator(mode="after")
    def _monitor_is_a_loss(self) -> TrainingConfig:
        if self.monitor not in MONITORS and not HEAD_MONITOR.fullmatch(self.monitor):
            raise ValueError(f"monitor: must be a validation loss (the best checkpoint keeps the lowest): "
                             f"{', '.join(MONITORS)} or val_head<k>_loss, found {self.monitor!r}")
        return self


class ExecutionLimitsConfig(Section):
    """Limits of one sandboxed program run (docs/EXECUTION.md)."""

    time_s: Positive = 2.0
    memory_mb: PositiveInt = 512
    output_bytes: PositiveInt = 1_000_000


class ExecutionConfig(Section):
    """How untrusted programs run: the sandbox's limits and parallelism."""

    workers: PositiveInt = 2
    allow_weaker_isolation: bool = False
    """True runs programs even where a sandbox mechanism is missing (logged loudly)."""
    limits: ExecutionLimitsConfig = Field(default_factory=ExecutionLimitsConfig)


class EvaluationConfig(Section):
    """Pass@k by execution on the held-out test problems (docs/EVALUATION.md)."""

    enabled: bool = True
    model: Optional[str] = None
    """A model directory to evaluate instead of the recipe's best model."""
    n_samples: NonNegativeInt = 10
    temperature: NonNegative = 0.8
    top_p: Share = 0.95
    top_k: NonNegativeInt = 0
    k: list[int] = Field(default_factory=lambda: [1, 5, 10])
    max_new_tokens: PositiveInt = 320
    batch_size: PositiveInt = 16
    speculative: bool = False
    """Self-speculative decoding for the greedy completions (same output, faster)."""
    max_problems: Optional[int] = Field(None, ge=1)
    """Evaluate only the first N test problems (a quick look; not for reported figures)."""
    train_sample: NonNegativeInt = 30
    """Training problems in the greedy sanity line (0 = skip it)."""
    bootstrap_resamples: PositiveInt = 1000
    seed: int = 0

    @model_validator(mode="after")
    def _k_within_samples(self) -> EvaluationConfig:
        problems = [f"k: every k must be in [1, n_samples={self.n_samples}], found {k}"
                    for k in self.k if not 1 <= k <= self.n_samples]
        if self.n_samples > 0 and self.temperature == 0:
            problems.append("temperature: must be > 0 when n_samples > 0 (temperature 0 gives n "
                            "identical samples; the greedy line is always reported)")
        refuse(problems)
        return self


class RunConfig(Section):
    project: ProjectConfig
    models: ModelsConfig
    dataset: DatasetConfig
    mlflow: MlflowConfig
    training: TrainingConfig
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The merged params dict the config was built from (for checkpoints and MLflow);
        not a field: not an input key, not in ``model_dump()``, not compared."""
        return self._raw

    def with_raw(self, raw: dict[str, Any]) -> RunConfig:
        """A copy that carries ``raw`` (the validator sets it after validation)."""
        copy = self.model_copy()
        copy._raw = raw
        return copy

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too; two configs built from differently
        # spelled params are the same config
        if not isinstance(other, RunConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @model_validator(mode="after")
    def _agrees_with_recipe(self) -> RunConfig:
        refuse(recipe_contradictions(self) + monitor_contradictions(self))
        return self
