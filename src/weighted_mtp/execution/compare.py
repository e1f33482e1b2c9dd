"""The output comparison rule: CodeContests-style (see docs/EXECUTION.md).

Trailing whitespace on every line and trailing blank lines are ignored; everything else
(leading blank lines, case, separators, ``12.0`` for ``12``) is a difference. The parent
applies it to the bytes it read from the program's stdout, so nothing the program prints
can change the rule.
"""

from __future__ import annotations


def normalise_output(text: str | bytes) -> list[bytes]:
    """Return the lines of ``text`` as they are compared.

    Args:
        text: Program output (bytes) or an expected output (str, encoded as UTF-8).

    Returns:
        The lines, split on ``\\n``, each right-stripped of ASCII whitespace (so ``\\r\\n``
        endings do not matter), with trailing empty lines removed.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    lines = [line.rstrip() for line in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def outputs_match(produced: bytes, expected: str | bytes) -> bool:
    """Whether a program's stdout equals the expected output under `normalise_output`."""
    return normalise_output(produced) == normalise_output(expected)
