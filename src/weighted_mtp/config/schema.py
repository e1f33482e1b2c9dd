"""Frozen dataclasses for the merged parameters.

Config enters the Kedro-free packages through one door: the validated params dict becomes
these dataclasses at the node boundary, so loops never read YAML or guess at missing keys.
The field names equal the YAML keys of ``conf/base/parameters.yml``; the validator derives
the set of allowed keys from these fields, so a new option is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    recipe: str = "verifiable"
    experiment: str = "default"
    preset: Optional[str] = None
    """Set by the scale preset's own parameters file (conf/presets/<name>)."""
    checkpoint_dir: str = "data/06_models/checkpoints/default"


@dataclass(frozen=True)
class MicroModelConfig:
    dim: int = 128
    n_layers: int = 6
    n_heads: int = 4
    n_kv_heads: Optional[int] = 2
    n_future_tokens: int = 4
    max_seq_len: int = 512
    seed: int = 0


@dataclass(frozen=True)
class PolicyModelConfig:
    name: str
    path: str
    create_micro: bool = False
    dtype: str = "float32"
    device: str = "auto"
    value_head: str = "linear"
    micro: MicroModelConfig = field(default_factory=MicroModelConfig)


@dataclass(frozen=True)
class ReferenceModelConfig:
    name: str = "reference"
    path: Optional[str] = None


@dataclass(frozen=True)
class ModelsConfig:
    policy: PolicyModelConfig
    reference: ReferenceModelConfig = field(default_factory=ReferenceModelConfig)


@dataclass(frozen=True)
class DatasetConfig:
    train: str
    validation: str
    name: str = "embedded-code"
    raw: Optional[str] = None
    tokenizer: Optional[str] = None
    test: Optional[str] = None
    """Held-out test problems (written by data_processing, read by evaluation)."""
    max_length: int = 512
    validation_fraction: float = 0.1
    test_fraction: float = 0.3
    split_seed: int = 42
    max_solutions_per_problem: int = 4
    tokenizer_vocab_size: int = 4096


@dataclass(frozen=True)
class MlflowConfig:
    """Experiment tracking (docs/MLFLOW.md); the store itself is configured in mlflow.yml.

    ``experiment_name`` None means ``weighted-mtp/<project.recipe>``, derived after the
    recipe env and ``--params`` are merged (an interpolation in conf/base would freeze the
    base recipe); ``run_name`` None means ``WMTP_MLFLOW_RUN_NAME`` or ``<recipe>/<pipelines>``.
    """

    enabled: bool = True
    experiment_name: Optional[str] = None
    run_name: Optional[str] = None
    log_checkpoints: str = "best"


@dataclass(frozen=True)
class PretrainConfig:
    enabled: bool = True
    n_epochs: float = 3.0
    learning_rate: float = 1e-3
    batch_size: int = 8
    warmup_ratio: float = 0.1


@dataclass(frozen=True)
class Stage1Config:
    enabled: bool = True
    n_epochs: float = 0.5
    learning_rate: float = 1e-4
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    loss: str = "mse"
    huber_delta: float = 1.0
    freeze_trunk: bool = True
    train_on: str = "all"
    value_target: str = "outcome"   # outcome | first_error (docs/METHOD.md, "Critic quality")


@dataclass(frozen=True)
class TDEMAConfig:
    enabled: bool = False
    momentum: float = 0.99
    warmup_steps: int = 10


@dataclass(frozen=True)
class Stage2Config:
    enabled: bool = True
    n_epochs: float = 2.5
    learning_rate: float = 1e-5
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 0.5
    weighting: str = "td"
    beta: float = 0.9
    gamma: float = 1.0
    td_lambda: float = 0.0
    initial_value: float = 0.5
    value_coef: float = 0.5
    value_loss: str = "mse"
    weight_clip_min: float = 0.1
    weight_clip_max: float = 5.0
    normalize_mean: bool = False
    td_ema: TDEMAConfig = field(default_factory=TDEMAConfig)
    k_percent: float = 0.6
    train_on: str = "correct"
    loss_heads: Optional[int] = None   # null: every head; 1: next-token loss on head 0 alone
    value_target: str = "outcome"      # outcome | first_error


@dataclass(frozen=True)
class DistributedConfig:
    """Multi-process training under torchrun (docs/DISTRIBUTED.md)."""

    strategy: str = "ddp"          # ddp | fsdp (fsdp needs CUDA)
    backend: str = "auto"          # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    timeout_minutes: float = 30.0  # collective timeout: a rank that dies ends the others


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 42
    log_interval: int = 10
    eval_interval: int = 100
    save_checkpoint_every: int = 1
    resume_from: Optional[str] = None
    monitor: str = "val_loss"
    patience: int = 5
    early_stopping: bool = False
    num_workers: int = 0
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass(frozen=True)
class ExecutionLimitsConfig:
    """Limits of one sandboxed program run (docs/EXECUTION.md)."""

    time_s: float = 2.0
    memory_mb: int = 512
    output_bytes: int = 1_000_000


@dataclass(frozen=True)
class ExecutionConfig:
    """How untrusted programs run: the sandbox's limits and parallelism."""

    workers: int = 2
    allow_weaker_isolation: bool = False
    """True runs programs even where a sandbox mechanism is missing (logged loudly)."""
    limits: ExecutionLimitsConfig = field(default_factory=ExecutionLimitsConfig)


@dataclass(frozen=True)
class EvaluationConfig:
    """Pass@k by execution on the held-out test problems (docs/EVALUATION.md)."""

    enabled: bool = True
    model: Optional[str] = None
    """A model directory to evaluate instead of the recipe's best model."""
    n_samples: int = 10
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    k: list = field(default_factory=lambda: [1, 5, 10])
    max_new_tokens: int = 320
    batch_size: int = 16
    speculative: bool = False
    """Self-speculative decoding for the greedy completions (same output, faster)."""
    max_problems: Optional[int] = None
    """Evaluate only the first N test problems (a quick look; not for reported figures)."""
    train_sample: int = 30
    """Training problems in the greedy sanity line (0 = skip it)."""
    bootstrap_resamples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    project: ProjectConfig
    models: ModelsConfig
    dataset: DatasetConfig
    mlflow: MlflowConfig
    training: TrainingConfig
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The merged params dict the config was built from (for checkpoints and MLflow)."""
