"""The program inside a completion."""

from __future__ import annotations

from weighted_mtp.evaluation import extract_program


def test_bare_code_is_the_program() -> None:
    assert extract_program("n = int(input())\nprint(n)\n\n") == "n = int(input())\nprint(n)\n"


def test_a_markdown_fence_is_removed() -> None:
    text = "Here it is:\n```python\nprint(1)\n```\nThat prints 1."
    assert extract_program(text) == "print(1)\n"
    assert extract_program("```\nprint(2)\n```") == "print(2)\n"
    assert extract_program("```py\nprint(3)\n") == "print(3)\n"  # unclosed at the length limit


def test_blank_completions_hold_no_program() -> None:
    assert extract_program("") is None
    assert extract_program("  \n\n") is None
    assert extract_program("```python\n\n```") is None
