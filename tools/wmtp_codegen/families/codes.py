"""Task families about encodings and syntax: Caesar shifts, brackets, number bases."""

from __future__ import annotations

import random

from .base import Draft, describe, family, make_tests, miscased, program, yes_no_words
from .text import lines_input, random_lines, read_lines

# --------------------------------------------------------------- caesar_cipher

_LINES_INPUT_TEXT = (
    "The first line contains an integer t (1 <= t <= 10). Each of the next t lines "
    "contains a line of text (ASCII, at most 100 characters, possibly empty)."
)


def _shift(text: str, shift: int) -> str:
    """Reference Caesar shift: letters rotate within their case, the rest is kept."""
    out = []
    for ch in text:
        if ch.isascii() and ch.islower():
            out.append(chr((ord(ch) - 97 + shift) % 26 + 97))
        elif ch.isascii() and ch.isupper():
            out.append(chr((ord(ch) - 65 + shift) % 26 + 65))
        else:
            out.append(ch)
    return "".join(out)


_CAESAR_ORD = r"""
    t = int(input())
    for _ in range(t):
        out = []
        for ch in input():
            if "a" <= ch <= "z":
                out.append($LOWER)
            elif "A" <= ch <= "Z":
                out.append($UPPER)
            else:
                out.append(ch)
        print("".join(out))
"""
_CAESAR_TABLE = r"""
    import string
    import sys
    lo, up = string.ascii_lowercase, string.ascii_uppercase
    e = $E
    table = str.maketrans(lo + up, lo[e:] + lo[:e] + up[e:] + up[:e])
    rows = sys.stdin.read().split("\n")
    for line in rows[1:int(rows[0]) + 1]:
        print(line.translate(table))
"""


@family("caesar_cipher", difficulty=2)
def caesar_cipher(rng: random.Random) -> Draft:
    """Encrypt or decrypt lines with a Caesar shift of a drawn size."""
    k = rng.randint(1, 25)
    encrypt = rng.random() < 0.5
    sign, wrong_sign = ("+", "-") if encrypt else ("-", "+")
    effective = k if encrypt else 26 - k
    groups = [random_lines(rng, 3, 5) for _ in range(4)]
    groups.insert(1, ["xyz XYZ abc ABC", "Hello, World! 2024", ""])
    groups.append(["zebra-Zone 99 yak?"])
    tests = make_tests(
        [lines_input(g) for g in groups],
        lambda text: "\n".join(_shift(line, effective) for line in read_lines(text)),
    )

    def formulas(s: str, wrap: bool = True) -> dict[str, str]:
        if not wrap:
            return {"LOWER": f"chr(ord(ch) {s} {k})", "UPPER": f"chr(ord(ch) {s} {k})"}
        return {
            "LOWER": f"chr((ord(ch) - 97 {s} {k}) % 26 + 97)",
            "UPPER": f"chr((ord(ch) - 65 {s} {k}) % 26 + 65)",
        }

    correct = (program(_CAESAR_ORD, **formulas(sign)), program(_CAESAR_TABLE, E=effective))
    lowered = formulas(sign)["LOWER"].replace("ord(ch)", "ord(ch.lower())")
    mutants = (
        ("missing_modulo", program(_CAESAR_ORD, **formulas(sign, wrap=False))),
        ("wrong_operator", program(_CAESAR_ORD, **formulas(wrong_sign))),
        ("wrong_case", program(_CAESAR_ORD, **{**formulas(sign), "UPPER": lowered})),
        ("missed_edge_case", program(_CAESAR_ORD, **{**formulas(sign), "UPPER": "ch"})),
    )
    action = (
        f"Encrypt each line with a Caesar cipher: replace every letter by the letter {k} "
        f"positions later in the alphabet" if encrypt else
        f"Each line was encrypted with a Caesar cipher that moves every letter {k} positions "
        f"later in the alphabet. Decrypt it: replace every letter by the letter {k} positions "
        f"earlier"
    )
    description = describe(
        f"{action}, wrapping around from z to a (and from a to z). Upper case letters stay "
        "upper case, lower case letters stay lower case, and all other characters are "
        "copied unchanged.",
        _LINES_INPUT_TEXT,
        "Print t lines, the transformed lines in order.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ----------------------------------------------------------- balanced_brackets

_BRACKET_PAIRS = ("()", "[]", "{}", "<>")

_BRACKET_STACK = r"""
    PAIRS = $PAIRS
    t = int(input())
    for _ in range(t):
        s = input().strip()
        stack = []
        ok = True
        for ch in s:
            if ch in PAIRS.values():
                stack.append(ch)
            elif not stack or stack.pop() != PAIRS[ch]:
                ok = False
                break
        print($YES if $FINAL else $NO)
"""
_BRACKET_REPLACE = r"""
    import sys
    rows = sys.stdin.read().split("\n")
    for s in rows[1:int(rows[0]) + 1]:
        s = s.strip()
        prev = None
        while prev != s:
            prev = s
            for pair in $PAIR_LIST:
                s = s.replace(pair, "")
        print($YES if not s else $NO)
"""
_BRACKET_DEPTH = r"""
    OPEN = $OPEN
    t = int(input())
    for _ in range(t):
        depth = 0
        ok = True
        for ch in input().strip():
            depth += 1 if ch in OPEN else -1
            if depth < 0:
                ok = False
        print($YES if ok and depth == 0 else $NO)
"""
_BRACKET_COUNTS = r"""
    t = int(input())
    for _ in range(t):
        s = input().strip()
        ok = all(s.count(p[0]) == s.count(p[1]) for p in $PAIR_LIST)
        print($YES if ok else $NO)
"""


def _balanced(rng: random.Random, pairs: list[str], size: int) -> str:
    """A random balanced string with ``size`` bracket pairs."""
    if size == 0:
        return ""
    inner = rng.randint(0, size - 1)
    pair = rng.choice(pairs)
    inside = _balanced(rng, pairs, inner)
    return pair[0] + inside + pair[1] + _balanced(rng, pairs, size - 1 - inner)


def _is_balanced(s: str, pairs: list[str]) -> bool:
    """Reference check with a stack."""
    closing = {p[1]: p[0] for p in pairs}
    stack: list[str] = []
    for ch in s:
        if ch in closing:
            if not stack or stack.pop() != closing[ch]:
                return False
        else:
            stack.append(ch)
    return not stack


def _bracket_cases(rng: random.Random, pairs: list[str]) -> list[list[str]]:
    """Test groups mixing balanced strings with the classic failure shapes."""
    a, b = pairs[0], pairs[-1]
    tricky = [a[1] + a[0], a[0] * 2, a[0] + b[1] if a != b else a[0] + a[1] + a[1], ""]
    if len(pairs) > 1:
        tricky.append(a[0] + b[0] + a[1] + b[1])
    groups = []
    for _ in range(4):
        group = [_balanced(rng, pairs, rng.randint(1, 6)) for _ in range(rng.randint(1, 3))]
        broken = list(_balanced(rng, pairs, rng.randint(2, 6)))
        broken.pop(rng.randrange(len(broken)))
        groups.append(group + ["".join(broken)])
    groups.insert(1, tricky)
    return groups


@family("balanced_brackets", difficulty=3)
def balanced_brackets(rng: random.Random) -> Draft:
    """Bracket-sequence validity for a drawn set of bracket kinds and answer wording."""
    pairs = rng.sample(_BRACKET_PAIRS, rng.randint(1, 3))
    yes, no = yes_no_words(rng)
    groups = _bracket_cases(rng, pairs)
    tests = make_tests(
        [lines_input(g) for g in groups],
        lambda text: "\n".join(yes if _is_balanced(s, pairs) else no for s in read_lines(text)),
    )
    words = dict(YES=repr(yes), NO=repr(no))
    stack = dict(PAIRS=repr({p[1]: p[0] for p in pairs}), FINAL="ok and not stack", **words)
    shouted = {**stack, "YES": repr(miscased(yes)), "NO": repr(miscased(no))}
    openers = "".join(p[0] for p in pairs)
    correct = (
        program(_BRACKET_STACK, **stack),
        program(_BRACKET_REPLACE, PAIR_LIST=repr(pairs), **words),
    )
    mutants = (
        ("missed_edge_case", program(_BRACKET_STACK, **{**stack, "FINAL": "ok"})),
        ("wrong_algorithm", program(_BRACKET_DEPTH, OPEN=repr(openers), **words)),
        ("wrong_algorithm", program(_BRACKET_COUNTS, PAIR_LIST=repr(pairs), **words)),
        ("wrong_case", program(_BRACKET_STACK, **shouted)),
    )
    kinds = " ".join(pairs)
    description = describe(
        f"A string made of the brackets {kinds} is balanced when every opening bracket is "
        "closed by a bracket of the same kind, in the correct order. The empty string is "
        "balanced. Decide for each string whether it is balanced.",
        "The first line contains an integer t (1 <= t <= 10). Each of the next t lines "
        f"contains a string of at most 100 characters from {kinds} (possibly empty).",
        f"For each string print {yes} if it is balanced and {no} otherwise.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ------------------------------------------------------------- base_conversion


def _to_base(n: int, base: int) -> str:
    """Reference conversion of a non-negative integer to ``base`` (2..9)."""
    digits = []
    while True:
        digits.append(str(n % base))
        n //= base
        if n == 0:
            return "".join(reversed(digits))


_TO_BASE_LOOP = r"""
    t = int(input())
    for _ in range(t):
        n = int(input())
        $ZERO
        digits = []
        while n > $STOP:
            digits.append(str(n % $B))
            n //= $B
        print("".join($ORDER))
"""
_TO_BASE_RECURSIVE = r"""
    import sys
    def conv(n):
        return str(n) if n < $B else conv(n // $B) + str(n % $B)
    for tok in sys.stdin.read().split()[1:]:
        print(conv(int(tok)))
"""
_FROM_BASE_HORNER = r"""
    t = int(input())
    for _ in range(t):
        s = input().strip()
        value = 0
        for ch in $DIGITS:
            value = value * $B + int(ch)
        print(value)
"""


_FROM_BASE_BUILTIN = "import sys\nfor tok in sys.stdin.read().split()[1:]:\n    print(int(tok, $B))"
_AS_DECIMAL = "t = int(input())\nfor _ in range(t):\n    print(int(input()))"


def _base_programs(base: int, to_base: bool) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Correct programs and mutants of `base_conversion` for one direction."""
    if to_base:
        zero = "if n == 0:\n        print(0)\n        continue"
        loop = dict(ZERO=zero, STOP=0, B=base, ORDER="reversed(digits)")
        correct = (program(_TO_BASE_LOOP, **loop), program(_TO_BASE_RECURSIVE, B=base))
        mutants = (
            ("missed_edge_case", program(_TO_BASE_LOOP, **{**loop, "ZERO": ""})),
            ("wrong_order", program(_TO_BASE_LOOP, **{**loop, "ORDER": "digits"})),
            ("off_by_one", program(_TO_BASE_LOOP, **{**loop, "STOP": 1})),
        )
        return correct, mutants
    horner = dict(DIGITS="s", B=base)
    powers = (
        "t = int(input())\nfor _ in range(t):\n    s = input().strip()\n"
        f"    print(sum(int(ch) * {base} ** (i + 1) for i, ch in enumerate(reversed(s))))"
    )
    correct = (
        program(_FROM_BASE_HORNER, **horner),
        program(_FROM_BASE_BUILTIN, B=base),
    )
    mutants = (
        ("wrong_order", program(_FROM_BASE_HORNER, **{**horner, "DIGITS": "reversed(s)"})),
        ("off_by_one", program(powers)),
        ("wrong_algorithm", program(_AS_DECIMAL)),
    )
    return correct, mutants


@family("base_conversion", difficulty=1)
def base_conversion(rng: random.Random) -> Draft:
    """Convert numbers from decimal to a drawn base (2..9) or back."""
    base, to_base = rng.randint(2, 9), rng.random() < 0.5
    pools = [
        [rng.randint(10, 10**6) for _ in range(rng.randint(2, 4))],
        [base - 1, 0, 1, base],
        [base**rng.randint(2, 6), base**rng.randint(2, 6) - 1],
        [rng.randint(0, 100) for _ in range(3)],
        [rng.randint(10**6, 10**9)],
        [rng.randint(base, base * base), 0],
    ]
    if to_base:
        inputs = [f"{len(p)}\n" + "".join(f"{v}\n" for v in p) for p in pools]
        solve = lambda text: "\n".join(  # noqa: E731
            _to_base(int(v), base) for v in text.split()[1:]
        )
    else:
        inputs = [f"{len(p)}\n" + "".join(f"{_to_base(v, base)}\n" for v in p) for p in pools]
        solve = lambda text: "\n".join(str(int(v, base)) for v in text.split()[1:])  # noqa: E731
    tests = make_tests(inputs, solve)
    correct, mutants = _base_programs(base, to_base)
    if to_base:
        task = (f"Write each given non-negative integer in base {base}, without leading zeros "
                "(zero is written as 0).")
        fmt = "Each of the next t lines contains an integer n (0 <= n <= 10^9)."
    else:
        task = f"Each given number is written in base {base}. Print its value in base 10."
        fmt = (f"Each of the next t lines contains a number written with the digits 0..{base - 1}, "
               "without leading zeros, whose value is at most 10^9.")
    description = describe(
        task,
        f"The first line contains an integer t (1 <= t <= 10). {fmt}",
        "Print t lines, the converted numbers in order.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)
