"""The program inside a completion.

Training responses are bare code, so a completion normally *is* the program; a model that
learned Markdown from elsewhere may wrap it in a fence, which is removed. A completion with
no code at all is recorded as "no program" rather than run (docs/EVALUATION.md).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_program(completion: str) -> str | None:
    """The program to run, or None when the completion holds no code.

    Args:
        completion: Generated text after the prompt (the end-of-response marker removed).

    Returns:
        The first fenced block's body when the completion has a fence, else the completion;
        None when what remains is blank.
    """
    match = _FENCE.search(completion)
    program = match.group(1) if match else completion
    program = program.strip("\n")
    return program + "\n" if program.strip() else None
