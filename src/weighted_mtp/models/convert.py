"""Convert Meta's release (``consolidated.pth`` + ``params.json``) to the model directory.

The tensors keep Meta's names and dtype (bf16 for 7B_1T_4); only ``rope.freqs`` (a
precomputed table, not a weight) is dropped. Every key and shape is checked against
``params.json`` before anything is written. Meta's ``tokenizer.model`` (SentencePiece) is
converted to a Hugging Face tokenizer folder (``data/sentencepiece_tokenizer.py``), checked
against SentencePiece, before the weights are written.

Usage::

    python -m weighted_mtp.models.convert --consolidated 7B_1T_4/consolidated.pth \\
        --params 7B_1T_4/params.json --out data/06_models/meta-llama-mtp-7b \\
        --tokenizer tokenizer.model
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from weighted_mtp.models import checkpoint_io as ckpt
from weighted_mtp.models.args import ModelArgs

logger = logging.getLogger(__name__)


def _read_params(params_path: Path, embeddings: torch.Tensor | None) -> ModelArgs:
    """ModelArgs from Meta's params.json; ``vocab_size: -1`` is taken from the embeddings."""
    if not params_path.is_file():
        raise FileNotFoundError(f"params file {params_path} not found (Meta ships it next to "
                                "consolidated.pth)")
    try:
        params = json.loads(params_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{params_path}: invalid JSON at line {error.lineno}: "
                         f"{error.msg}") from error
    args = ModelArgs.from_dict(params, source=str(params_path))
    if args.vocab_size == -1:
        if embeddings is None:
            raise ValueError(f"{params_path} has vocab_size -1 and the checkpoint has no "
                             "tok_embeddings.weight to infer it from")
        args = args.replace(vocab_size=int(embeddings.shape[0]))
        logger.info("vocab_size -1 in %s: using %d from tok_embeddings.weight", params_path,
                    args.vocab_size)
    return args


def _load_consolidated(path: Path) -> dict[str, torch.Tensor]:
    """Meta's state dict, memory-mapped so a 13 GB file is not read into RAM at once."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; pass Meta's consolidated.pth "
                                "(multi-shard consolidated.NN.pth releases are not supported)")
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (key → tensor), found "
                         f"{type(state).__name__}")
    for key in ckpt.META_IGNORED_KEYS:
        state.pop(key, None)
    return state


def convert_meta_checkpoint(consolidated_path: str | Path, params_path: str | Path,
                            out_dir: str | Path, model_name: str | None = None,
                            tokenizer: str | Path | None = None) -> Path:
    """Write Meta's checkpoint as a model directory (no value head: it starts fresh).

    Args:
        consolidated_path: Meta's ``consolidated.pth``.
        params_path: Meta's ``params.json``.
        out_dir: Target directory (written atomically).
        model_name: Stored in metadata; default: the checkpoint's parent folder name.
        tokenizer: Optional: a Hugging Face tokenizer folder, copied to ``tokenizer/``, or
            Meta's SentencePiece ``tokenizer.model``, converted into ``tokenizer/``.

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: An input is missing.
        ValueError: Keys or shapes disagree with ``params.json`` (listed in the message),
            ``params.json`` holds a setting the model does not implement, or the tokenizer
            does not convert exactly or has more tokens than the model's vocabulary.
    """
    consolidated_path, params_path = Path(consolidated_path), Path(params_path)
    state = _load_consolidated(consolidated_path)
    args = _read_params(params_path, state.get("tok_embeddings.weight"))
    found = {key: tuple(t.shape) for key, t in state.items()}
    ckpt.check_shapes(found, ckpt.meta_key_shapes(args), str(consolidated_path),
                      hint=f"Is {params_path} the params.json of this checkpoint?")
    name = model_name or consolidated_path.resolve().parent.name
    with tempfile.TemporaryDirectory(prefix="wmtp-tokenizer-") as scratch:
        # The tokenizer is converted and checked first: a bad one fails before the long write.
        tokenizer_dir = None if tokenizer is None else _prepare_tokenizer(
            Path(tokenizer), Path(scratch) / "tokenizer", args.vocab_size)
        logger.info("keys and shapes match %s; writing %d tensors to %s", params_path,
                    len(state), out_dir)
        out = ckpt.write_model_dir(Path(out_dir), state, args, name)
        if tokenizer_dir is not None:
            _copy_tokenizer(tokenizer_dir, out)
    logger.info("converted %s (%d tensors, %d parameters) to %s", consolidated_path,
                len(state), ckpt.count_params(found), out)
    return out


def _prepare_tokenizer(tokenizer: Path, scratch: Path, vocab_size: int) -> Path:
    """A Hugging Face tokenizer folder: ``tokenizer`` itself, or ``tokenizer.model`` converted
    into ``scratch``; a SentencePiece model must fit the embedding table."""
    if tokenizer.is_dir():
        return tokenizer
    if not tokenizer.is_file():
        raise FileNotFoundError(f"tokenizer {tokenizer} not found: pass Meta's tokenizer.model "
                                "or a Hugging Face tokenizer folder")
    # Imported here: it loads transformers, which a conversion without tokenizer.model skips.
    from weighted_mtp.data.sentencepiece_tokenizer import convert_sentencepiece

    converted = convert_sentencepiece(tokenizer, scratch)
    if len(converted) > vocab_size:
        raise ValueError(f"{tokenizer} has {len(converted)} tokens but the checkpoint's "
                         f"vocabulary has {vocab_size}: is it the tokenizer of this model?")
    return scratch


def _copy_tokenizer(tokenizer_dir: Path, out: Path) -> None:
    target = out / ckpt.TOKENIZER_DIR
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(tokenizer_dir, target)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m weighted_mtp.models.convert",
        description="Convert Meta's MTP consolidated.pth + params.json to a model directory.")
    parser.add_argument("--consolidated", required=True, type=Path,
                        help="Meta's consolidated.pth")
    parser.add_argument("--params", required=True, type=Path, help="Meta's params.json")
    parser.add_argument("--out", required=True, type=Path, help="output model directory")
    parser.add_argument("--model-name", default=None, help="name stored in metadata.json")
    parser.add_argument("--tokenizer", default=None, type=Path,
                        help="Meta's tokenizer.model (converted) or a Hugging Face tokenizer "
                             "folder (copied), written to <out>/tokenizer")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        convert_meta_checkpoint(options.consolidated, options.params, options.out,
                                model_name=options.model_name, tokenizer=options.tokenizer)
    except (FileNotFoundError, ValueError, ImportError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
