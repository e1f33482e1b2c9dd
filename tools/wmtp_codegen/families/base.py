"""Shared vocabulary of the task families: drafts, the registry and text helpers.

A *family* is a seeded generator of one kind of programming problem (e.g. "sum of the
integers that satisfy a condition"). Each call draws parameters (constants, wording,
input layout) from a `random.Random`, so problems of one family differ in their
statements, not only in their test data. A family returns a `Draft`: the statement, the
tests (expected outputs computed by a plain-Python reference), correct programs written
in different styles, and plausible incorrect programs ("mutants") tagged with the kind of
mistake they make. Whether a program really is correct is decided later by running it
(in the sandbox, see docs/EXECUTION.md); the tags only record intent.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from string import Template

# The mutation vocabulary; docs/DATASET.md explains each kind.
MUTATION_KINDS: tuple[str, ...] = (
    "off_by_one",
    "wrong_operator",
    "wrong_comparison",
    "wrong_initial_value",
    "missed_edge_case",
    "wrong_output_format",
    "wrong_case",
    "wrong_order",
    "wrong_type",
    "missing_modulo",
    "wrong_constant",
    "wrong_algorithm",
)


@dataclass(frozen=True)
class Draft:
    """One generated problem before verification.

    Attributes:
        description: Statement with input/output format and an example.
        tests: ``(stdin, expected stdout)`` pairs, 5-10 of them, edge cases included.
        correct: Programs intended to be correct (at least two, different styles).
        mutants: ``(mutation kind, program)`` pairs intended to be incorrect.
    """

    description: str
    tests: tuple[tuple[str, str], ...]
    correct: tuple[str, ...]
    mutants: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """A registered task family.

    Attributes:
        name: Stable identifier, used in problem names (``<name>_<index>``).
        difficulty: 1 (one loop) to 3 (several ideas or careful edge cases).
        make: Draws one `Draft` from the given random generator.
    """

    name: str
    difficulty: int
    make: Callable[[random.Random], Draft]


REGISTRY: dict[str, Family] = {}


def family(name: str, difficulty: int) -> Callable[[Callable[[random.Random], Draft]], Callable]:
    """Register a draft maker as a task family under ``name``.

    Args:
        name: Family identifier; must be unique.
        difficulty: 1..3.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: On a duplicate name or a difficulty outside 1..3.
    """

    def register(make: Callable[[random.Random], Draft]) -> Callable[[random.Random], Draft]:
        if name in REGISTRY:
            raise ValueError(f"Task family {name!r} is registered twice.")
        if difficulty not in (1, 2, 3):
            raise ValueError(f"Family {name!r}: difficulty must be 1..3, got {difficulty}.")
        REGISTRY[name] = Family(name, difficulty, make)
        return make

    return register


def program(template: str, **params: object) -> str:
    """Fill a solution template (``$NAME`` placeholders) and normalise its indentation.

    ``string.Template`` is used because Python source is full of braces, which would
    clash with ``str.format``.

    Args:
        template: Program text, possibly indented as a triple-quoted literal.
        **params: Values substituted for ``$NAME``; converted with ``str``.

    Returns:
        The program text, dedented and ending with one newline.
    """
    body = textwrap.dedent(template).strip("\n") + "\n"
    filled = Template(body).substitute({key: str(value) for key, value in params.items()})
    # Empty optional snippets leave whitespace-only lines; drop their trailing blanks.
    return "\n".join(line.rstrip() for line in filled.splitlines()) + "\n"


def block(snippet: str, level: int) -> str:
    """Indent every line but the first of a multi-line snippet by ``level`` blocks.

    A snippet substituted at ``$NAME`` inside an indented template line inherits that
    line's indentation only for its first line; the rest must be indented here.

    Args:
        snippet: Code lines, written at column 0.
        level: Number of 4-space indentation levels of the placeholder.

    Returns:
        The snippet ready to substitute.
    """
    lines = textwrap.dedent(snippet).strip("\n").splitlines()
    pad = "    " * level
    return "\n".join([lines[0]] + [pad + line if line else line for line in lines[1:]])


def describe(
    statement: str, input_format: str, output_format: str, example: tuple[str, str]
) -> str:
    """Assemble a CodeContests-style statement with sections and one worked example.

    Args:
        statement: What to compute.
        input_format: How stdin is laid out.
        output_format: What to print, exactly.
        example: ``(stdin, stdout)`` shown to the reader (the first test).

    Returns:
        The full description text.
    """
    example_in, example_out = example
    return (
        f"{statement.strip()}\n\n"
        f"Input\n{input_format.strip()}\n\n"
        f"Output\n{output_format.strip()}\n\n"
        f"Example\nInput:\n{example_in.rstrip()}\n\nOutput:\n{example_out.rstrip()}\n"
    )


def make_tests(inputs: Sequence[str], solve: Callable[[str], str]) -> tuple[tuple[str, str], ...]:
    """Pair each stdin text with the reference answer, ensuring a trailing newline.

    Args:
        inputs: Stdin texts.
        solve: Plain-Python reference mapping stdin text to the expected stdout.

    Returns:
        ``(stdin, expected stdout)`` pairs.
    """
    tests = []
    for text in inputs:
        answer = solve(text)
        tests.append((text, answer if answer.endswith("\n") else answer + "\n"))
    return tuple(tests)


def ints_line(values: Sequence[int]) -> str:
    """Format integers space-separated on one line (no trailing newline)."""
    return " ".join(str(value) for value in values)


def random_ints(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    """Draw ``count`` integers uniformly from ``[low, high]``."""
    return [rng.randint(low, high) for _ in range(count)]


@dataclass(frozen=True)
class ListLayout:
    """How a list of integers is laid out on stdin, plus matching reading code.

    Families that read one list draw a layout so problems differ in their input format,
    and every program template reads through ``read_lines`` or ``read_tokens``.

    Attributes:
        name: "counted" (n, then the values) or "bare" (only the values).
        text: Input-format sentence for the description.
        read_lines: Reads with ``input()``; defines ``n`` and ``nums``.
        read_tokens: Reads with ``sys.stdin.read()``; defines ``nums``.
    """

    name: str
    text: str
    read_lines: str
    read_tokens: str

    def render(self, values: Sequence[int]) -> str:
        """Return the stdin text for ``values`` in this layout."""
        if self.name == "counted":
            return f"{len(values)}\n{ints_line(values)}\n"
        return f"{ints_line(values)}\n"

    def parse(self, text: str) -> list[int]:
        """Read the values back from stdin text (used by the references)."""
        tokens = [int(token) for token in text.split()]
        return tokens[1:] if self.name == "counted" else tokens


LIST_LAYOUTS: tuple[ListLayout, ...] = (
    ListLayout(
        "counted",
        "The first line contains an integer n, the number of values. "
        "The second line contains n integers separated by single spaces.",
        "n = int(input())\nnums = list(map(int, input().split()))",
        "nums = [int(tok) for tok in sys.stdin.read().split()[1:]]",
    ),
    ListLayout(
        "bare",
        "A single line contains the integers, separated by single spaces.",
        "nums = list(map(int, input().split()))\nn = len(nums)",
        "nums = [int(tok) for tok in sys.stdin.read().split()]",
    ),
)


def miscased(word: str) -> str:
    """The word in the case a careless solution prints (``Yes`` -> ``YES``, ``NO`` -> ``No``).

    Judges compare case-sensitively, so this is a realistic failing mutation of any
    program that prints fixed words.
    """
    return word.upper() if word != word.upper() else word.capitalize()


def yes_no_words(rng: random.Random) -> tuple[str, str]:
    """Draw the pair of words a yes/no problem prints, so statements differ in wording."""
    return rng.choice(
        [("YES", "NO"), ("Yes", "No"), ("yes", "no"), ("TRUE", "FALSE"), ("True", "False")]
    )
