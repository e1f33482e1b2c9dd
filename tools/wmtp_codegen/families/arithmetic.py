"""Task families of everyday arithmetic: FizzBuzz, factorials, recurrences, digits, gcd."""

from __future__ import annotations

import random
from functools import reduce
from math import gcd

from .base import Draft, block, describe, family, make_tests, program

_T_NUMBERS = (
    "The first line contains an integer t (1 <= t <= 10). Each of the next t lines contains {what}."
)


def numbers_input(values: list[int]) -> str:
    """Stdin text for the "t, then t numbers one per line" layout."""
    return f"{len(values)}\n" + "".join(f"{v}\n" for v in values)


def numbers_of(text: str) -> list[int]:
    """Parse the "t, then t numbers" layout (used by the references)."""
    return [int(tok) for tok in text.split()[1:]]


# -------------------------------------------------------------------- fizzbuzz

_WORD_PAIRS = (("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong"), ("Tick", "Tock"),
               ("Hop", "Skip"), ("Red", "Blue"))

_FIZZ_CHAIN = r"""
    n = int(input())
    for i in range(1, $STOP):
        if $BOTH:
            print($W1 + $W2)
        elif i % $A == 0:
            print($W1)
        elif i % $B == 0:
            print($W2)
        else:
            print(i)
"""
_FIZZ_CONCAT = r"""
    n = int(input())
    lines = []
    for i in range(1, n + 1):
        word = ""
        if i % $A == 0:
            word += $W1
        if i % $B == 0:
            word += $W2
        lines.append(word or str(i))
    print($SEP.join(lines))
"""
_FIZZ_WRONG_ORDER = r"""
    n = int(input())
    for i in range(1, n + 1):
        if i % $A == 0:
            print($W1)
        elif i % $B == 0:
            print($W2)
        elif i % $A == 0 and i % $B == 0:
            print($W1 + $W2)
        else:
            print(i)
"""


@family("fizzbuzz", difficulty=1)
def fizzbuzz(rng: random.Random) -> Draft:
    """FizzBuzz with drawn divisors and words."""
    a, b = rng.choice([(a, b) for a in range(2, 8) for b in range(a + 1, 8) if b % a])
    w1, w2 = rng.choice(_WORD_PAIRS)

    def solve(text: str) -> str:
        n = int(text)
        words = [(w1 if i % a == 0 else "") + (w2 if i % b == 0 else "") for i in range(n + 1)]
        return "\n".join(words[i] or str(i) for i in range(1, n + 1))

    lcm = a * b // gcd(a, b)
    ns = [rng.randint(lcm + 1, 3 * lcm), 1, lcm, lcm - 1, 2 * lcm + 1, 0, rng.randint(1, 40)]
    tests = make_tests([f"{n}\n" for n in ns], solve)
    words = dict(A=a, B=b, W1=repr(w1), W2=repr(w2))
    both = f"i % {a} == 0 and i % {b} == 0"
    chain = dict(STOP="n + 1", BOTH=both, **words)
    correct = (program(_FIZZ_CHAIN, **chain), program(_FIZZ_CONCAT, SEP=repr("\n"), **words))
    mutants = (
        ("off_by_one", program(_FIZZ_CHAIN, **{**chain, "STOP": "n"})),
        ("wrong_order", program(_FIZZ_WRONG_ORDER, **words)),
        ("wrong_operator", program(_FIZZ_CHAIN, **{**chain, "BOTH": both.replace("and", "or")})),
        ("wrong_output_format", program(_FIZZ_CONCAT, SEP=repr(" "), **words)),
    )
    description = describe(
        f"Print the numbers from 1 to n, one per line, but print {w1} instead of numbers "
        f"divisible by {a}, {w2} instead of numbers divisible by {b}, and {w1}{w2} instead of "
        f"numbers divisible by both {a} and {b}.",
        "A single integer n (0 <= n <= 1000).",
        "Print n lines as described (nothing when n is 0).",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# --------------------------------------------------------------- factorial_mod

_MODULI = (10**9 + 7, 998244353, 10**4 + 7, 1009, 10**6 + 3, 97, 1000)

_FACT_LOOP = r"""
    t = int(input())
    for _ in range(t):
        n = int(input())
        f = 1
        total = 0
        for i in range($START, $STOP):
            f = f * i % $M
            total = (total + f) % $M
        print($ANSWER)
"""
_FACT_TABLE = r"""
    import sys
    ns = [int(tok) for tok in sys.stdin.read().split()[1:]]
    limit = max(ns)
    table = [1] * (limit + 1)
    sums = [0] * (limit + 1)
    for i in range(1, limit + 1):
        table[i] = table[i - 1] * i % $M
        sums[i] = (sums[i - 1] + table[i]) % $M
    for n in ns:
        print($PICK[n] % $M)
"""
_FACT_RECURSIVE = r"""
    import sys
    sys.setrecursionlimit(10000)
    def fact(n):
        if n <= 1:
            return n
        return n * fact(n - 1) % $M
    t = int(input())
    for _ in range(t):
        n = int(input())
        print($CALL)
"""


@family("factorial_mod", difficulty=2)
def factorial_mod(rng: random.Random) -> Draft:
    """n! or 1! + ... + n!, modulo a drawn modulus."""
    m = rng.choice(_MODULI)
    summed = rng.random() < 0.5

    def answer(n: int) -> int:
        f, total = 1, 0
        for i in range(1, n + 1):
            f = f * i % m
            total = (total + f) % m
        return total if summed else f % m

    pools = [[rng.randint(2, 12) for _ in range(3)], [0, 1, 2], [rng.randint(100, 500)],
             [rng.randint(20, 60), rng.randint(1, 9)], [500, 3], [1]]
    tests = make_tests([numbers_input(p) for p in pools],
                       lambda text: "\n".join(str(answer(n)) for n in numbers_of(text)))
    answer_expr = "total" if summed else f"f % {m}"
    loop = dict(START=1 if summed else 2, STOP="n + 1", M=m, ANSWER=answer_expr)
    other_m = 10**9 + 7 if m != 10**9 + 7 else 998244353
    table = program(_FACT_TABLE, M=m, PICK="sums" if summed else "table")
    correct = (program(_FACT_LOOP, **loop), table)
    mutants = [
        ("off_by_one", program(_FACT_LOOP, **{**loop, "STOP": "n"})),
        ("wrong_constant", program(_FACT_LOOP, **{**loop, "M": other_m})),
    ]
    if summed:
        from_zero = program(_FACT_LOOP, **loop).replace("total = 0", "total = 1")  # adds 0!
        mutants.append(("wrong_initial_value", from_zero))
    else:
        mutants.append(("missed_edge_case", program(_FACT_RECURSIVE, M=m, CALL="fact(n)")))
    what = "1! + 2! + ... + n! (0 when n = 0)" if summed else "n! = 1 * 2 * ... * n (with 0! = 1)"
    description = describe(
        f"For each given n compute {what}, modulo {m}.",
        _T_NUMBERS.format(what="an integer n (0 <= n <= 500)"),
        f"Print t lines: each answer modulo {m}.",
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))


# -------------------------------------------------------------- fibonacci_like

_FIB_ITER = r"""
    def f(n):
        x, y = $F0, $F1
        for _ in range($STEPS):
            $UPDATE
        return $RESULT % $M
    t = int(input())
    for _ in range(t):
        print(f(int(input())))
"""
_FIB_TABLE = r"""
    import sys
    ns = [int(tok) for tok in sys.stdin.read().split()[1:]]
    seq = [$F0 % $M, $F1 % $M]
    while len(seq) <= max(ns):
        seq.append((seq[-1] + $P * seq[-2]) % $M)
    for n in ns:
        print(seq[n])
"""


@family("fibonacci_like", difficulty=2)
def fibonacci_like(rng: random.Random) -> Draft:
    """n-th term of f(n) = f(n-1) + p*f(n-2) with drawn start values, p and modulus."""
    f0, f1 = rng.sample(range(0, 6), 2)
    p = rng.choice([1, 1, 2, 3])
    m = rng.choice([10**9 + 7, 10**4 + 7, 1000, 97, 10**6 + 3])

    def term(n: int) -> int:
        x, y = f0, f1
        for _ in range(n):
            x, y = y, (y + p * x) % m
        return x % m

    pools = [[rng.randint(2, 15) for _ in range(3)], [0, 1, 2], [rng.randint(200, 1000)],
             [1000, 0], [rng.randint(20, 90), 5], [3]]
    tests = make_tests([numbers_input(pool) for pool in pools],
                       lambda text: "\n".join(str(term(n)) for n in numbers_of(text)))
    step = "y + x" if p == 1 else f"y + {p} * x"
    it = dict(F0=f0, F1=f1, STEPS="n", UPDATE=f"x, y = y, ({step}) % {m}", RESULT="x", M=m)
    correct = (program(_FIB_ITER, **it), program(_FIB_TABLE, F0=f0, F1=f1, P=p, M=m))
    sequential = block(f"x = y\ny = ({step}) % {m}", 2)  # the classic lost-update slip
    mutants = [
        ("off_by_one", program(_FIB_ITER, **{**it, "STEPS": "n - 1"})),
        ("missed_edge_case", program(_FIB_ITER, **{**it, "STEPS": "n - 1", "RESULT": "y"})),
        ("wrong_initial_value", program(_FIB_ITER, **{**it, "F0": 0, "F1": 1})),
        ("wrong_order", program(_FIB_ITER, **{**it, "UPDATE": sequential})),
    ]
    if p != 1:
        swapped = f"x, y = y, ({p} * y + x) % {m}"
        mutants.append(("wrong_operator", program(_FIB_ITER, **{**it, "UPDATE": swapped})))
    rule = "f(n-1) + f(n-2)" if p == 1 else f"f(n-1) + {p} * f(n-2)"
    description = describe(
        f"A sequence is defined by f(0) = {f0}, f(1) = {f1} and f(n) = {rule} for n >= 2. "
        f"For each given n print f(n) modulo {m}.",
        _T_NUMBERS.format(what="an integer n (0 <= n <= 1000)"),
        f"Print t lines: f(n) modulo {m} for each n.",
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))


# --------------------------------------------------------------------- gcd_lcm

_GCD_TASKS = {  # variant -> (statement, answer template, reference)
    "gcd": ("the greatest common divisor of the numbers on the line", "{g}",
            lambda nums, g, l: f"{g}"),
    "lcm": ("the least common multiple of the numbers on the line", "{l}",
            lambda nums, g, l: f"{l}"),
    "both": ("their greatest common divisor and their least common multiple, separated by "
             "a space", "{g} {l}", lambda nums, g, l: f"{g} {l}"),
    "frac": ("the fraction a/b in lowest terms, written p/q", "{nums[0] // g}/{nums[1] // g}",
             lambda nums, g, l: f"{nums[0] // g}/{nums[1] // g}"),
}
_GCD_STYLES = {  # output style -> (line prefix in programs, description, reference prefix)
    "plain": ("", "Print one line per input line with the answer.", lambda case: ""),
    "hash": ("Case #{case}: ", 'Print one line per input line in the form "Case #i: answer", '
             "where i counts the lines from 1.", lambda case: f"Case #{case}: "),
    "colon": ("Case {case}: ", 'Print one line per input line in the form "Case i: answer", '
              "where i counts the lines from 1.", lambda case: f"Case {case}: "),
}
_GCD_REDUCE = r"""
    from functools import reduce
    from math import gcd
    t = int(input())
    for case in range(1, t + 1):
        nums = list(map(int, input().split()))
        g = $G
        l = $L
        print(f"$PREFIX$ANSWER"$END)
"""
_GCD_EUCLID = r"""
    import sys
    def my_gcd(a, b):
        while b:
            a, b = b, a % b
        return a
    rows = sys.stdin.read().split("\n")
    t = int(rows[0])
    for case in range(1, t + 1):
        nums = [int(v) for v in rows[case].split()]
        g = l = nums[0]
        for x in nums[1:]:
            g = my_gcd(g, x)
            l = l // my_gcd(l, x) * x
        print(f"$PREFIX$ANSWER")
"""
_GCD_BRUTE_SHORT = (
    "max([1] + [d for d in range(1, min(nums)) if all(x % d == 0 for x in nums)])"
)
_GCD_SLIPS = {  # variant -> mutants as (kind, overrides of the reduce program)
    "gcd": (("off_by_one", {"G": _GCD_BRUTE_SHORT}),
            ("wrong_initial_value", {"G": "reduce(gcd, nums, 1)"})),
    "lcm": (("wrong_algorithm", {"L": "reduce(lambda x, y: x * y, nums)"}),
            ("wrong_type", {"L": "reduce(lambda x, y: x * y / gcd(x, y), nums)"})),
    "both": (("wrong_algorithm", {"L": "reduce(lambda x, y: x * y, nums)"}),
             ("wrong_order", {"ANSWER": "{l} {g}"})),
    "frac": (("wrong_algorithm", {"ANSWER": "{nums[0]}/{nums[1]}"}),
             ("wrong_type", {"ANSWER": "{nums[0] / g}/{nums[1] / g}"})),
}


def _gcd_lines(rng: random.Random, pairs_only: bool) -> list[list[list[int]]]:
    """Test groups: numbers sharing a random factor, equal numbers, 1, divisor pairs."""
    def line(k: int) -> list[int]:
        base = rng.randint(1, 12)
        return [base * rng.randint(1, 30) for _ in range(k)]

    width = (lambda: 2) if pairs_only else (lambda: rng.randint(2, 4))
    d = rng.randint(2, 20)
    special = [[d, d * rng.randint(2, 9)], [7, 7], [1, rng.randint(2, 99)], [13, 17]]
    if not pairs_only:
        special.append([rng.randint(2, 500)])
    return [[line(width()) for _ in range(rng.randint(2, 4))], special,
            [line(width()) for _ in range(3)], [line(2)], [[d * 6, d * 4], [d * 9, d * 3]]]


@family("gcd_lcm", difficulty=1)
def gcd_lcm(rng: random.Random) -> Draft:
    """gcd / lcm / both / reduced fraction per line, with a drawn output style."""
    variant, style = rng.choice(list(_GCD_TASKS)), rng.choice(list(_GCD_STYLES))
    statement, answer, reference = _GCD_TASKS[variant]
    prefix, style_text, ref_prefix = _GCD_STYLES[style]

    def solve(text: str) -> str:
        out = []
        for case, row in enumerate(text.split("\n")[1 : int(text.split()[0]) + 1], start=1):
            nums = [int(v) for v in row.split()]
            g, l = reduce(gcd, nums), reduce(lambda x, y: x * y // gcd(x, y), nums)
            out.append(ref_prefix(case) + reference(nums, g, l))
        return "\n".join(out)

    inputs = ["".join([f"{len(g)}\n"] + [" ".join(map(str, row)) + "\n" for row in g])
              for g in _gcd_lines(rng, variant == "frac")]
    tests = make_tests(inputs, solve)
    base = dict(G="reduce(gcd, nums)", L="reduce(lambda x, y: x * y // gcd(x, y), nums)",
                PREFIX=prefix, ANSWER=answer, END="")
    correct = (program(_GCD_REDUCE, **base), program(_GCD_EUCLID, PREFIX=prefix, ANSWER=answer))
    if style == "plain":
        fmt = {"END": ', end=" "'}
    else:
        fmt = {"PREFIX": prefix.replace("{case}", "{case - 1}")}
    mutants = tuple(
        (kind, program(_GCD_REDUCE, **{**base, **over})) for kind, over in _GCD_SLIPS[variant]
    )
    mutants += (("wrong_output_format", program(_GCD_REDUCE, **{**base, **fmt})),)
    numbers = ("two positive integers a and b" if variant == "frac"
               else "one to four positive integers separated by spaces")
    description = describe(
        f"For each line of input print {statement}.",
        _T_NUMBERS.format(what=f"{numbers} (each at most 10000)"),
        style_text,
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ------------------------------------------------------------------- digit_sum

_DIGIT_TASKS = {  # variant -> (phrase, string-style code, arithmetic expression, reference)
    "sum": ("the sum of its decimal digits", "r = sum(digits)", "sum(ds)", sum),
    "root": ("its digital root: sum its digits, then the digits of that sum, and so on "
             "until a single digit remains",
             "r = sum(digits)\nwhile r >= 10:\n    r = sum(int(c) for c in str(r))",
             "0 if int(tok) == 0 else 1 + (abs(int(tok)) - 1) % 9",
             lambda ds: 0 if sum(ds) == 0 else 1 + (int("".join(map(str, ds))) - 1) % 9),
    "product": ("the product of its decimal digits", "r = 1\nfor d in digits:\n    r *= d",
                "math.prod(ds)", lambda ds: reduce(lambda a, b: a * b, ds, 1)),
    "even": ("how many of its decimal digits are even (0 is even)",
             "r = sum(1 for d in digits if d % 2 == 0)", "sum(d % 2 == 0 for d in ds)",
             lambda ds: sum(d % 2 == 0 for d in ds)),
    "max": ("its largest decimal digit", "r = max(digits)", "max(ds)", max),
}
_DIGITS_BY_STRING = r"""
    t = int(input())
    results = []
    for _ in range(t):
        digits = [int(c) for c in $TEXT]
        $COMPUTE
        results.append(r)
    $EMIT
"""
_DIGITS_BY_DIVISION = r"""
    import math
    import sys
    def digits_of(n):
        n = abs(n)
        out = []
        while True:
            out.append(n % 10)
            n $DIV 10
            if n == 0:
                return out
    results = []
    for tok in sys.stdin.read().split()[1:]:
        ds = digits_of(int(tok))
        results.append($EXPR)
    $EMIT
"""

_DIGITS_EMIT = {
    "per_line": ("Print t lines, the answer for each number in order.",
                 "for r in results:\n    print(r)"),
    "total": ("Print a single integer: the sum of the answers over all numbers.",
              "print(sum(results))"),
}


@family("digit_sum", difficulty=1)
def digit_sum(rng: random.Random) -> Draft:
    """Digit sum / digital root / digit product / even-digit count / max digit of integers."""
    variant, emit_kind = rng.choice(list(_DIGIT_TASKS)), rng.choice(list(_DIGITS_EMIT))
    phrase, compute, expr, reference = _DIGIT_TASKS[variant]
    emit_text, emit = _DIGITS_EMIT[emit_kind]

    def solve(text: str) -> str:
        answers = [reference([int(c) for c in str(abs(n))]) for n in numbers_of(text)]
        return "\n".join(map(str, answers)) if emit_kind == "per_line" else str(sum(answers))

    pools = [
        [rng.randint(10, 99999) for _ in range(3)],
        [0, -rng.randint(10, 999), 7],
        [rng.randint(10**11, 10**12)],
        [9999999, 1000],
        [-rng.randint(1, 9), rng.randint(100, 999)],
        [rng.randint(-10**6, 10**6) for _ in range(4)],
    ]
    tests = make_tests([numbers_input(p) for p in pools], solve)
    unsigned = 'input().strip().lstrip("-")'
    string_style = dict(TEXT=unsigned, COMPUTE=block(compute, 1), EMIT=block(emit, 0))
    division = dict(DIV="//=", EXPR=expr, EMIT=block(emit, 0))
    correct = (program(_DIGITS_BY_STRING, **string_style), program(_DIGITS_BY_DIVISION, **division))
    mutants = [
        ("missed_edge_case", program(_DIGITS_BY_STRING, **{**string_style, "TEXT": "input()"})),
        ("off_by_one", program(_DIGITS_BY_STRING, **{**string_style, "TEXT": unsigned + "[:-1]"})),
        ("wrong_operator", program(_DIGITS_BY_DIVISION, **{**division, "DIV": "/="})),
    ]
    if variant == "root":
        one_pass = program(_DIGITS_BY_STRING, **{**string_style, "COMPUTE": "r = sum(digits)"})
        mutants.append(("wrong_algorithm", one_pass))
    description = describe(
        f"For each given integer compute {phrase}. The sign of a negative number is ignored.",
        _T_NUMBERS.format(what="an integer n (|n| <= 10^12)"),
        emit_text,
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))
