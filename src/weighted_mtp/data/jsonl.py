"""JSON Lines reading and atomic writing.

Records travel between pipeline stages as JSONL files (one JSON object per line). Reading
reports the exact file and line of a bad record, because a hand-edited or truncated data file
is the most common cause of a failed run; writing goes through a temp file and ``os.replace``
so that an interrupted run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from weighted_mtp.runtime.files import atomic_file

PathLike = str | os.PathLike[str]


def read_jsonl(
    path: PathLike, check: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Reads a JSONL file into a list of dicts.

    Blank (whitespace-only) lines are skipped so that a trailing newline or a separating
    blank line is harmless; line numbers still count them, so they match an editor's.

    Args:
        path: The file to read (UTF-8).
        check: Optional; called with each record, raises ``ValueError`` with the reason
            when the record is unfit (e.g. ``weighted_mtp.data.check_alpaca_record``).

    Returns:
        One dict per non-blank line, in file order.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a line is not UTF-8, not valid JSON, not a JSON object or fails
            ``check``; the message names the file, the 1-based line number and the reason.
    """
    path = Path(path)
    with path.open("rb") as handle:
        return parse_jsonl(handle, path, check)


def parse_jsonl(
    handle: IO[bytes], source: PathLike, check: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Reads JSONL records from a binary handle (a local file, or one fsspec opened).

    Args:
        handle: Opened for binary reading.
        source: What errors name as the file (its path or URL).
        check: As for :func:`read_jsonl`.

    Returns:
        One dict per non-blank line, in order.

    Raises:
        ValueError: As for :func:`read_jsonl`, naming ``source`` and the line.
    """
    records: list[dict[str, Any]] = []
    # Binary, decoded line by line: a decoding error from a text-mode file has no line number.
    for line_number, raw in enumerate(handle, start=1):
        line = _decode_line(raw, source, line_number)
        if line.strip():
            records.append(_parse_line(line, source, line_number))
            if check is not None:
                _check_record(check, records[-1], source, line_number)
    return records


def _check_record(
    check: Callable[[dict[str, Any]], None], record: dict[str, Any], path: PathLike, line_number: int
) -> None:
    """Runs ``check`` on one record, adding the file and line to its reason."""
    try:
        check(record)
    except ValueError as error:
        raise ValueError(f"{path}:{line_number}: {error}") from error


def _decode_line(raw: bytes, path: PathLike, line_number: int) -> str:
    """Decodes one line as UTF-8, naming the file, line and byte when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}:{line_number}: not UTF-8 (byte 0x{raw[error.start]:02x} at column "
            f"{error.start + 1}); re-save the file as UTF-8"
        ) from error


def _parse_line(line: str, path: PathLike, line_number: int) -> dict[str, Any]:
    """Parses one JSONL line, naming the file and line when it is not a JSON object."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}:{line_number}: invalid JSON ({error.msg} at column {error.colno})"
        ) from error
    if not isinstance(value, dict):
        raise ValueError(
            f"{path}:{line_number}: expected a JSON object per line, "
            f"found {type(value).__name__}"
        )
    return value


def write_jsonl(path: PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Writes records as JSONL atomically, creating parent directories.

    The records are written to a temp file in the destination directory (same file system,
    so the rename is atomic) and then moved over ``path``; readers see either the old file or
    the complete new one. Non-ASCII text is written as UTF-8, not escaped, so files stay
    readable.

    Args:
        path: The destination file.
        records: Mappings that ``json.dumps`` can serialise.

    Raises:
        TypeError: If a record is not a mapping or holds a value JSON cannot encode; the
            message gives the record's 0-based index. No file is left behind.
    """
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as handle:
        dump_jsonl(handle, records)


def dump_jsonl(handle: IO[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Writes records as JSON lines to a text handle (see :func:`write_jsonl`)."""
    for index, record in enumerate(records):
        handle.write(_dump_record(record, index))
        handle.write("\n")


def _dump_record(record: Mapping[str, Any], index: int) -> str:
    """Serialises one record to a single JSON line, naming the record on failure."""
    if not isinstance(record, Mapping):
        raise TypeError(f"record {index}: expected a mapping, found {type(record).__name__}")
    try:
        return json.dumps(dict(record), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"record {index}: cannot be written as JSON ({error})") from error
