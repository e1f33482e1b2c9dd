"""Task families over one list of integers: sums, extremes, prefixes, dedup, sorting."""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import accumulate

from .base import (
    LIST_LAYOUTS,
    Draft,
    describe,
    family,
    make_tests,
    miscased,
    program,
    random_ints,
)

# ---------------------------------------------------------------- sum_filtered


def _sum_condition(rng: random.Random) -> tuple[str, str, str | None, Callable[[int], bool], int]:
    """Draw (phrase, condition on x, plausible wrong condition or None, predicate, pivot).

    The pivot is a value on the condition's boundary; putting it in a test is what makes
    a ``>`` versus ``>=`` mistake visible.
    """
    k, t = rng.randint(2, 9), rng.randint(-10, 10)
    return rng.choice(
        [
            ("strictly positive", "x > 0", "x >= 0", lambda x: x > 0, 0),
            ("negative", "x < 0", "x <= 0", lambda x: x < 0, 0),
            ("even", "x % 2 == 0", "x & 1 == 0", lambda x: x % 2 == 0, 0),
            ("odd", "x % 2 == 1", None, lambda x: x % 2 == 1, 0),
            (f"divisible by {k}", f"x % {k} == 0", f"x % {k} != 0", lambda x: x % k == 0, k),
            (f"strictly greater than {t}", f"x > {t}", f"x >= {t}", lambda x: x > t, t),
            (f"at most {t}", f"x <= {t}", f"x < {t}", lambda x: x <= t, t),
        ]
    )


_SUM_LOOP = r"""
    $READ_LINES
    total = 0
    for i in range($START, n):
        x = nums[i]
        if $COND:
            total += x
    print(total)
"""
_SUM_BUILTIN = r"""
    import sys
    $READ_TOKENS
    print(sum(x for x in nums if $COND))
"""
_SUM_FROM_FIRST = r"""
    $READ_LINES
    x = nums[0]
    total = x if $COND else 0
    for x in nums[1:]:
        if $COND:
            total += x
    print(total)
"""


@family("sum_filtered", difficulty=1)
def sum_filtered(rng: random.Random) -> Draft:
    """Sum of the integers satisfying a drawn condition (parity, sign, threshold...)."""
    layout = rng.choice(LIST_LAYOUTS)
    phrase, cond, wrong, pred, pivot = _sum_condition(rng)
    sat = next(x for x in range(-30, 31) if pred(x) and x != 0)
    unsat = next(x for x in range(30, -31, -1) if not pred(x))
    lists = [
        random_ints(rng, 7, -20, 20) + [pivot],
        random_ints(rng, 10, -50, 50),
        [],
        [sat],
        [unsat],
        random_ints(rng, 6, -40, -1),
        random_ints(rng, 15, -1000, 1000),
    ]
    inputs = [layout.render(values) for values in lists]
    tests = make_tests(inputs, lambda text: str(sum(x for x in layout.parse(text) if pred(x))))
    params = dict(READ_LINES=layout.read_lines, COND=cond, START=0)
    correct = (
        program(_SUM_LOOP, **params),
        program(_SUM_BUILTIN, READ_TOKENS=layout.read_tokens, COND=cond),
    )
    mutants = [
        ("off_by_one", program(_SUM_LOOP, **{**params, "START": 1})),
        ("missed_edge_case", program(_SUM_FROM_FIRST, **params)),
        ("wrong_type", program(_SUM_LOOP.replace("total = 0", "total = 0.0"), **params)),
    ]
    if wrong is not None:
        mutants.append(("wrong_comparison", program(_SUM_LOOP, **{**params, "COND": wrong})))
    description = describe(
        f"You are given a list of integers. Print the sum of those that are {phrase}. "
        "The sum of no numbers is 0.",
        layout.text + " The list may be empty (0 <= n <= 100); |values| <= 1000.",
        "Print a single integer: the sum.",
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))


# --------------------------------------------------------------- extreme_value

_REPORT_TEXT = {
    "value": "Print that value.",
    "first": "Print the 1-based position of its first occurrence.",
    "last": "Print the 1-based position of its last occurrence.",
    "both": "Print that value and the 1-based position of its first occurrence, "
    "separated by a space.",
}


def _extreme_answer(nums: list[int], op: str, report: str) -> str:
    """Reference answer of `extreme_value`."""
    best = max(nums) if op == "max" else min(nums)
    first, last = nums.index(best) + 1, len(nums) - nums[::-1].index(best)
    answers = {"value": best, "first": first, "last": last, "both": f"{best} {first}"}
    return str(answers[report])


def _extreme_lists(rng: random.Random, op: str) -> list[list[int]]:
    """Test lists: duplicated extreme, singleton, all-negative, unique extreme at the end."""
    dup = random_ints(rng, 7, -9, 9)
    extreme = max(dup) if op == "max" else min(dup)
    dup.insert(rng.randint(0, len(dup)), extreme)
    tail = random_ints(rng, 6, -30, 30)
    tail.append(max(tail) + 5 if op == "max" else min(tail) - 5)
    return [
        dup,
        random_ints(rng, 9, -100, 100),
        [rng.randint(-50, 50)],
        random_ints(rng, 6, -40, -1),
        random_ints(rng, 6, 1, 40),
        tail,
        [rng.randint(-5, 5)] * 4,
    ]


_EXTREME_BUILTIN = r"""
    $READ_LINES
    best = $OP(nums)
    first = nums.index(best) + $BASE
    last = len(nums) - nums[::-1].index(best) - 1 + $BASE
    print($OUT)
"""
_EXTREME_SCAN = r"""
    import sys
    $READ_TOKENS
    pos = 0
    for i in range(1, len(nums)$END):
        if nums[i] $CMP nums[pos]:
            pos = i
    best = nums[pos]
    print($OUT)
"""
_EXTREME_FROM_ZERO = r"""
    $READ_LINES
    best, pos = 0, 0
    for i, x in enumerate(nums):
        if x $CMP best:
            best, pos = x, i + 1
    first = last = pos
    print($OUT)
"""


@family("extreme_value", difficulty=1)
def extreme_value(rng: random.Random) -> Draft:
    """Maximum or minimum of a list, reported as value and/or first/last position."""
    layout = rng.choice(LIST_LAYOUTS)
    op, report = rng.choice(["max", "min"]), rng.choice(list(_REPORT_TEXT))
    strict = ">" if op == "max" else "<"
    cmp = strict + "=" if report == "last" else strict
    flipped = strict if report == "last" else strict + "="
    inputs = [layout.render(values) for values in _extreme_lists(rng, op)]
    tests = make_tests(inputs, lambda text: _extreme_answer(layout.parse(text), op, report))
    out_a = {"value": "best", "first": "first", "last": "last", "both": "best, first"}[report]
    position = "best, pos + 1" if report == "both" else "pos + 1"
    out_b = "best" if report == "value" else position
    builtin, scan = _EXTREME_BUILTIN, _EXTREME_SCAN
    a = dict(READ_LINES=layout.read_lines, OP=op, BASE=1, OUT=out_a)
    b = dict(READ_TOKENS=layout.read_tokens, END="", CMP=cmp, OUT=out_b)
    mutants = [
        ("off_by_one", program(scan, **{**b, "END": " - 1"})),
        (
            "wrong_initial_value",
            program(_EXTREME_FROM_ZERO, READ_LINES=layout.read_lines, CMP=cmp, OUT=out_a),
        ),
        ("wrong_order", program(builtin, **{**a, "OP": "min" if op == "max" else "max"})),
    ]
    if report != "value":
        mutants.append(("wrong_comparison", program(scan, **{**b, "CMP": flipped})))
        mutants.append(("off_by_one", program(builtin, **{**a, "BASE": 0})))
    word = "largest" if op == "max" else "smallest"
    description = describe(
        f"Find the {word} of the given integers. {_REPORT_TEXT[report]}",
        layout.text + " There is at least one value (1 <= n <= 100); |values| <= 1000.",
        "Print the answer on a single line.",
        tests[0],
    )
    correct = (program(builtin, **a), program(scan, **b))
    return Draft(description, tests, correct, tuple(mutants))


# -------------------------------------------------------------- second_largest


_SECOND_BY_SORT = r"""
    $READ_LINES
    values = sorted($UNIQUE)
    if len(values) < 2:
        print($WORD)
    else:
        print(values[$IDX])
"""
_SECOND_SCAN = r"""
    import sys
    $READ_TOKENS
    first = second = None
    for x in nums:
        if first is None or x $BETTER first:
            first, second = x, first
        elif x != first and (second is None or x $BETTER second):
            second = x
    print($WORD if second is None else second)
"""
_SECOND_FROM_ZERO = r"""
    $READ_LINES
    first = second = 0
    for x in nums:
        if x $BETTER first:
            first, second = x, first
        elif x != first and x $BETTER second:
            second = x
    print($WORD if second == 0 else second)
"""


@family("second_largest", difficulty=2)
def second_largest(rng: random.Random) -> Draft:
    """Second largest (or smallest) distinct value, with a sentinel word when missing."""
    layout = rng.choice(LIST_LAYOUTS)
    which = rng.choice(["largest", "smallest"])
    word = rng.choice(["NONE", "NO ANSWER", "IMPOSSIBLE", "NOT FOUND", "None"])
    idx, better = ("-2", ">") if which == "largest" else ("1", "<")

    def solve(text: str) -> str:
        values = sorted(set(layout.parse(text)))
        return word if len(values) < 2 else str(values[int(idx)])

    top = random_ints(rng, 7, -30, 30)
    top.append(max(top) if which == "largest" else min(top))
    lists = [
        top,
        random_ints(rng, 6, 0, 50),
        [rng.randint(-9, 9)],
        [rng.randint(-9, 9)] * 4,
        rng.sample(range(-60, -1), 5),
        rng.sample(range(-20, 20), 2),
        random_ints(rng, 10, -100, 100),
    ]
    tests = make_tests([layout.render(v) for v in lists], solve)
    by_sort = _SECOND_BY_SORT
    sort_params = dict(READ_LINES=layout.read_lines, UNIQUE="set(nums)", WORD=repr(word), IDX=idx)
    correct = (
        program(by_sort, **sort_params),
        program(_SECOND_SCAN, READ_TOKENS=layout.read_tokens, BETTER=better, WORD=repr(word)),
    )
    zero_start = _SECOND_FROM_ZERO
    unguarded = "$READ_LINES\nvalues = sorted(set(nums))\nprint(values[$IDX])"
    mutants = (
        ("missed_edge_case", program(by_sort, **{**sort_params, "UNIQUE": "nums"})),
        ("missed_edge_case", program(unguarded, READ_LINES=layout.read_lines, IDX=idx)),
        (
            "wrong_initial_value",
            program(zero_start, READ_LINES=layout.read_lines, BETTER=better, WORD=repr(word)),
        ),
        ("wrong_case", program(by_sort, **{**sort_params, "WORD": repr(miscased(word))})),
    )
    description = describe(
        f"Print the second {which} distinct value among the given integers. If fewer than "
        f"two distinct values exist, print {word}.",
        layout.text + " There is at least one value (1 <= n <= 100); |values| <= 1000.",
        f"Print the value, or the text {word}, on a single line.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# --------------------------------------------------------------- running_total

_RUNNING = {  # op -> (phrase, combine expression, accumulate argument, neutral start)
    "sum": ("sum", "cur + x", "", "0"),
    "max": ("maximum", "max(cur, x)", ", max", "nums[0]"),
    "min": ("minimum", "min(cur, x)", ", min", "nums[0]"),
}


_RUNNING_LOOP = r"""
    $READ_LINES
    out = []
    cur = $INIT
    for x in nums:
        cur = $COMBINE
        out.append(cur)
    print($SEP.join(map(str, out)))
"""
_RUNNING_SHIFTED = r"""
    $READ_LINES
    out = []
    cur = $INIT
    for x in nums:
        out.append(cur)
        cur = $COMBINE
    print($SEP.join(map(str, out)))
"""
_RUNNING_ACCUMULATE = r"""
    import sys
    from itertools import accumulate
    $READ_TOKENS
    print(*accumulate(nums$FUNC), sep=$SEP)
"""


@family("running_total", difficulty=1)
def running_total(rng: random.Random) -> Draft:
    """Prefix sums / maxima / minima printed with a drawn separator."""
    layout = rng.choice(LIST_LAYOUTS)
    op = rng.choice(list(_RUNNING))
    sep_name, sep = rng.choice([("space", " "), ("newline", "\n")])
    phrase, combine, func, start = _RUNNING[op]
    lists = [
        random_ints(rng, 6, -20, 20),
        [rng.randint(-9, 9)],
        random_ints(rng, 5, -30, -1),
        random_ints(rng, 5, 1, 30),
        random_ints(rng, 10, -100, 100),
        [0, rng.randint(1, 9), 0, -rng.randint(1, 9), 0],
    ]
    ops = {"sum": lambda a, b: a + b, "max": max, "min": min}

    def solve(text: str) -> str:
        return sep.join(str(v) for v in accumulate(layout.parse(text), ops[op]))

    tests = make_tests([layout.render(v) for v in lists], solve)
    loop, shifted = _RUNNING_LOOP, _RUNNING_SHIFTED
    lp = dict(READ_LINES=layout.read_lines, INIT=start, COMBINE=combine, SEP=repr(sep))
    wrong_init = ("wrong_type", "0.0") if op == "sum" else ("wrong_initial_value", "0")
    correct = (
        program(loop, **lp),
        program(_RUNNING_ACCUMULATE, READ_TOKENS=layout.read_tokens, FUNC=func, SEP=repr(sep)),
    )
    other_sep = repr(" " if sep == "\n" else "\n")
    mutants = (
        ("off_by_one", program(shifted, **lp)),
        (wrong_init[0], program(loop, **{**lp, "INIT": wrong_init[1]})),
        ("wrong_output_format", program(loop, **{**lp, "SEP": other_sep})),
    )
    description = describe(
        f"For every position i of the list, output the {phrase} of the first i values "
        "(the running " + phrase + ").",
        layout.text + " There is at least one value (1 <= n <= 100); |values| <= 1000.",
        f"Print the n running values separated by a {sep_name}.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)
