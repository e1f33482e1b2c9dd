"""Meta's ``tokenizer.model`` (SentencePiece BPE) as a Hugging Face tokenizer folder.

LLaMA 1/2 and the MTP release ship a SentencePiece BPE model with byte fallback, no text
normalisation (``identity``), a dummy-prefix space and whitespace kept as it is. The same
tokenizer in the ``tokenizers`` library is a BPE over the same pieces (same ids) whose merges
are ranked by piece score, a normalizer doing what SentencePiece does before it splits
(prepend "▁", spaces → "▁"), and the inverse decoder. Rather than trusting that a model
follows LLaMA's settings, the saved folder is reloaded with ``AutoTokenizer`` and checked
against SentencePiece itself on probe texts: a model with other settings (NFKC
normalisation, collapsed whitespace, a unigram model) is refused, naming the first text that
encodes differently. Nothing here downloads anything.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from weighted_mtp.runtime.files import replace_directory, staging_directory

logger = logging.getLogger(__name__)

SPACE = "▁"  # SentencePiece's visible space (U+2581)
_NO_LENGTH_LIMIT = 1_000_000_000
# Texts both tokenizers must encode identically: leading, repeated and trailing spaces,
# tabs and blank lines (indentation is meaning in Python), digits, and characters that are
# not pieces (byte fallback).
PROBE_TEXTS = (
    "def add(a, b):\n    return a + b\n",
    "  two leading spaces", " one leading space", "trailing  ", "a  b   c",
    "\tindented with a tab\n\n\tafter a blank line",
    "x = 12345 + 0.5e-3", "héllo wörld ✓ 日本語 🙂", "", "a",
    "for i in range(10):\n        print(i, end=' ')\r\n",
)


def convert_sentencepiece(model_file: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                          probe_texts: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """Write a SentencePiece BPE ``tokenizer.model`` as a Hugging Face tokenizer folder.

    Args:
        model_file: Meta's ``tokenizer.model``.
        out_dir: Folder written with ``save_pretrained`` (``tokenizer.json`` …); replaced
            only once the converted tokenizer has passed the check.
        probe_texts: Texts checked in addition to :data:`PROBE_TEXTS`.

    Returns:
        The tokenizer as ``AutoTokenizer.from_pretrained(out_dir)`` loads it: same ids as
        SentencePiece for every probe text, BOS added by default (as Hugging Face's LLaMA
        tokenizers do; the training code passes ``add_special_tokens=False``).

    Raises:
        FileNotFoundError: ``model_file`` is missing.
        ValueError: It is not a SentencePiece model, or the converted tokenizer encodes a
            probe text differently (the text and both id lists are named).
    """
    model_file = Path(model_file)
    processor = _load_processor(model_file)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=_backend(processor), model_max_length=_NO_LENGTH_LIMIT,
        clean_up_tokenization_spaces=False, **_special_tokens(processor))
    staging = staging_directory(out_dir)  # out_dir is replaced only by a checked tokenizer
    try:
        wrapped.save_pretrained(str(staging))
        reloaded = AutoTokenizer.from_pretrained(str(staging), local_files_only=True)
        _check_same_ids(processor, reloaded, PROBE_TEXTS + tuple(probe_texts), model_file)
        replace_directory(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted %s (%d pieces) to a Hugging Face tokenizer in %s", model_file,
                processor.get_piece_size(), out_dir)
    return reloaded


def _load_processor(model_file: Path) -> Any:
    if not model_file.is_file():
        raise FileNotFoundError(f"tokenizer model {model_file} not found (Meta ships "
                                "tokenizer.model next to the checkpoint folder)")
    try:
        import sentencepiece
    except ImportError as error:  # a dependency of the project; missing in a bare environment
        raise ImportError("converting tokenizer.model needs the sentencepiece package "
                          "(pip install sentencepiece)") from error
    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    except (RuntimeError, OSError) as error:
        raise ValueError(f"{model_file}: not a SentencePiece model ({error}); Llama 3's "
                         "tiktoken tokenizer.model is not supported") from error


def _backend(processor: Any) -> Tokenizer:
    """The ``tokenizers`` pipeline of a LLaMA-style SentencePiece BPE model."""
    size = processor.get_piece_size()
    vocab = {processor.id_to_piece(i): i for i in range(size)}
    byte_fallback = any(processor.is_byte(i) for i in range(size))
    unk = processor.id_to_piece(processor.unk_id())
    backend = Tokenizer(models.BPE(vocab=vocab, merges=_merges(processor), unk_token=unk,
                                   fuse_unk=True, byte_fallback=byte_fallback))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE),
                                               normalizers.Replace(" ", SPACE)])
    steps = [decoders.Replace(SPACE, " ")]
    steps += [decoders.ByteFallback()] if byte_fallback else []
    backend.decoder = decoders.Sequence(steps + [decoders.Fuse(),
                                                 decoders.Strip(content=" ", left=1)])
    bos = processor.bos_id()
    if bos >= 0:  # "<s> $A", as Hugging Face's LLaMA tokenizers
        piece = processor.id_to_piece(bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{piece} $A", pair=f"{piece} $A {piece} $B", special_tokens=[(piece, bos)])
    return backend


def _merges(processor: Any) -> list[tuple[str, str]]:
    """BPE merges: every split of a normal piece into two normal pieces, ranked as
    SentencePiece merges (highest score of the merged piece first, then lower id)."""
    normal = {processor.id_to_piece(i): (processor.get_score(i), i)
              for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i)
                      or processor.is_byte(i) or processor.is_unused(i))}
    ranked = []
    for piece, (score, index) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    return [(left, right) for _, _, left, right in sorted(ranked)]


def _special_tokens(processor: Any) -> dict[str, str]:
    names = {"unk_token": processor.unk_id(), "bos_token": processor.bos_id(),
             "eos_token": processor.eos_id(), "pad_token": processor.pad_id()}
    return {name: processor.id_to_piece(i) for name, i in names.items() if i >= 0}


def _check_same_ids(processor: Any, tokenizer: Any, texts: tuple[str, ...],
                    model_file: Path) -> None:
    for text in texts:
        expected = processor.encode(text)
        found = tokenizer.encode(text, add_special_tokens=False)
        if found != expected:
            raise ValueError(
                f"{model_file}: the converted tokenizer encodes {text!r} as {found[:12]} but "
                f"SentencePiece as {expected[:12]}; only LLaMA-style models (BPE, identity "
                "normalisation, whitespace kept) are supported")
        if tokenizer.decode(found) != processor.decode(expected):
            raise ValueError(f"{model_file}: the converted tokenizer decodes {text!r} as "
                             f"{tokenizer.decode(found)!r} but SentencePiece as "
                             f"{processor.decode(expected)!r}")
