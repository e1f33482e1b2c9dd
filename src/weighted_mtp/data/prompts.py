"""Alpaca prompt templates (docs/internal/CONTRACTS.md).

The templates are the standard Alpaca ones, so that models instruction-tuned on Alpaca-style
data see the framing they were trained on. The prompt ends right after ``### Response:\\n``:
the response is tokenised separately and appended (see ``collate.encode_record``).
"""

from __future__ import annotations

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n"
    "### Response:\n"
)

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n"
    "### Response:\n"
)


def format_prompt(instruction: str, input_text: str = "") -> str:
    """Builds the Alpaca prompt for one record.

    Args:
        instruction: The task description (the record's ``instruction``).
        input_text: Optional extra context (the record's ``input``); an empty string selects
            the template without an ``### Input:`` section.

    Returns:
        The prompt text, ending with ``"### Response:\\n"``.
    """
    if input_text:
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    return PROMPT_NO_INPUT.format(instruction=instruction)
