"""The exported best model as an MLflow Model: a ``pyfunc`` that writes code.

``mlflow.pyfunc.load_model("runs:/<run id>/model").predict(["Read two integers ..."])``
returns one completion per instruction, made as evaluation makes them: the training
prompt (the Alpaca template of ``data/prompts.py``, BOS first), greedy unless ``params``
ask for sampling, stopping at EOS (:func:`weighted_mtp.generation.generate_text`).

What travels with the logged model:

- ``artifacts/model_dir``: the model directory ``save_best`` wrote (weights, metadata,
  ``tokenizer/``), loaded with ``MetaLlamaMTPAdapter.from_pretrained``;
- the model as code (``pyfunc_entry.py``, MLflow's "models from code": no pickle) and
  ``code/weighted_mtp``, this package, so the model loads where the project is not
  installed (MLflow puts it on ``sys.path``; an installed ``weighted_mtp`` wins);
- a signature (a list of instruction strings in, a list of completions out, and the
  generation params with their defaults) and an input example;
- ``model_config``: ``device`` and ``dtype`` of the loaded model (``cpu``/``float32`` by
  default; ``load_model(uri, model_config={"device": "cuda", "dtype": "bfloat16"})``).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # runs:/<run id>/model
MODEL_DIR_ARTIFACT = "model_dir"
DEFAULT_MAX_NEW_TOKENS = 256
# Generation params a caller may pass to predict(..., params={...}); greedy by default.
SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": 0}
DEFAULT_MODEL_CONFIG: dict[str, Any] = {"device": "cpu", "dtype": "float32"}
EXAMPLE_INSTRUCTION = "Read two integers from standard input and print their sum."
EXAMPLE_MAX_NEW_TOKENS = 8  # the input example is run once when the model is logged: keep it short
REQUIREMENTS = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "tqdm", "pyyaml")


class CodeGenerationModel(mlflow.pyfunc.PythonModel):
    """Instructions in, generated responses out, with the project's generation."""

    def load_context(self, context: Any) -> None:
        """Load the model directory of the ``model_dir`` artifact (device and dtype from
        ``model_config``) and its tokenizer."""
        from weighted_mtp.data.tokenizer import load_tokenizer
        from weighted_mtp.models import MetaLlamaMTPAdapter

        config = {**DEFAULT_MODEL_CONFIG, **(context.model_config or {})}
        model_dir = context.artifacts[MODEL_DIR_ARTIFACT]
        self.model = MetaLlamaMTPAdapter.from_pretrained(model_dir, device=config["device"], dtype=config["dtype"])
        self.model.eval()
        self.tokenizer = load_tokenizer(model_dir)

    # model_input is typed as a DataFrame because that is what pyfunc hands over for this
    # signature (a list of strings arrives as a one-column frame); a list[str] hint would make
    # MLflow replace the logged signature's params with ones inferred from the input example.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Mapping[str, Any] | None = None) -> list[str]:
        """One completion per instruction.

        Args:
            context: MLflow's context (unused after loading).
            model_input: Instruction strings: a one-column DataFrame (also a list or Series).
            params: ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``.

        Returns:
            The responses, without the prompt and the EOS that ended them.
        """
        return complete(self.model, self.tokenizer, instructions_of(model_input), **dict(params or {}))


def instructions_of(model_input: Any) -> list[str]:
    """The instruction strings of what ``predict`` received (pyfunc may hand over a
    DataFrame or a Series for a list, depending on how it was called).

    Raises:
        ValueError: Something other than strings.
    """
    if hasattr(model_input, "columns"):  # a DataFrame: its one column
        model_input = model_input.iloc[:, 0]
    if hasattr(model_input, "tolist"):  # a Series or an array
        model_input = model_input.tolist()
    if isinstance(model_input, str):
        model_input = [model_input]
    items = list(model_input)
    bad = [index for index, item in enumerate(items) if not isinstance(item, str)]
    if bad:
        raise ValueError(f"expected instruction strings; item {bad[0]} is {type(items[bad[0]]).__name__}")
    return items


def complete(model: Any, tokenizer: Any, instructions: Sequence[str], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
             **sampling: Any) -> list[str]:
    """Generate a response to each instruction with at most ``max_new_tokens`` new tokens,
    fewer where the prompt leaves less of the model's context.

    Raises:
        ValueError: An instruction whose prompt fills the context, naming it and the lengths.
    """
    from weighted_mtp.data.collate import encode_prompts
    from weighted_mtp.generation import generate_text
    from weighted_mtp.runtime.distributed import rank_local

    options = {**SAMPLING_DEFAULTS, **sampling}
    context = model.args.max_seq_len
    lengths = [len(ids) for ids in encode_prompts([(text, "") for text in instructions], tokenizer)]
    budgets = [min(int(max_new_tokens), context - length) for length in lengths]
    for index, (budget, length) in enumerate(zip(budgets, lengths)):
        if budget < 1:
            raise ValueError(f"instruction {index}: its prompt is {length} tokens and the model's context "
                             f"is {context}; nothing is left to generate. Shorten the instruction.")
    responses: list[str] = [""] * len(instructions)
    # A pyfunc call is this process's own: under torchrun, generate() would otherwise split
    # the prompts over ranks that never join (MLflow checks the input example on rank 0 alone).
    with rank_local():
        for budget in sorted(set(budgets)):  # one call per budget: the request's, unless a prompt is long
            indices = [index for index, value in enumerate(budgets) if value == budget]
            texts = generate_text(model, tokenizer, [instructions[index] for index in indices],
                                  max_new_tokens=budget, **options)
            for index, text in zip(indices, texts):
                responses[index] = text
    return responses


def signature(max_new_tokens: int) -> ModelSignature:
    """A list of instruction strings in, one completion each out; the generation params."""
    params = [ParamSpec("max_new_tokens", DataType.long, int(max_new_tokens)),
              ParamSpec("temperature", DataType.double, float(SAMPLING_DEFAULTS["temperature"])),
              ParamSpec("top_p", DataType.double, float(SAMPLING_DEFAULTS["top_p"])),
              ParamSpec("top_k", DataType.long, int(SAMPLING_DEFAULTS["top_k"])),
              ParamSpec("seed", DataType.long, int(SAMPLING_DEFAULTS["seed"]))]
    return ModelSignature(inputs=Schema([ColSpec(DataType.string)]), outputs=Schema([ColSpec(DataType.string)]),
                          params=ParamSchema(params))


def pip_requirements() -> list[str]:
    """The packages the model needs to load, pinned to the versions it was logged with
    (the package's own code travels with the model). Local version labels (``+cpu``) are
    dropped: the same release from any index will do."""
    pinned = []
    for name in REQUIREMENTS:
        try:
            version = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)
        else:
            pinned.append(f"{name}=={version}")
    return pinned


def log_code_model(model_dir: str | Path, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                   register_as: str | None = None) -> Any:
    """Log ``model_dir`` to the active MLflow run as the pyfunc ``model``; register it as
    ``register_as`` when given.

    MLflow runs the input example through the model once to check that it serves (a few
    seconds for the micro model; a 7B model is loaded on the CPU for it).

    Args:
        model_dir: A local model directory with ``tokenizer/``.
        max_new_tokens: The default of the ``max_new_tokens`` param.
        register_as: A registered model name, or None.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``, ...).
    """
    import weighted_mtp

    log.info("MLflow: logging %s as the pyfunc model %r%s", model_dir, MODEL_NAME,
             f", registered as {register_as!r}" if register_as else "")
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        code_paths=[str(Path(weighted_mtp.__file__).parent)],
        signature=signature(max_new_tokens),
        input_example=([EXAMPLE_INSTRUCTION], {"max_new_tokens": EXAMPLE_MAX_NEW_TOKENS}),
        pip_requirements=pip_requirements(),
        model_config=dict(DEFAULT_MODEL_CONFIG),
        registered_model_name=register_as,
    )
