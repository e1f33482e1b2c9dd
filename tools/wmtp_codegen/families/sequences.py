"""Task families that rearrange or query a sequence: dedup, sorting, range queries."""

from __future__ import annotations

import random
from collections import Counter
from functools import reduce
from itertools import groupby
from operator import xor

from .base import (
    LIST_LAYOUTS,
    Draft,
    describe,
    family,
    ints_line,
    make_tests,
    program,
    random_ints,
)

# ---------------------------------------------------------------- unique_values

# variant -> (statement, reference, loop snippet, builtin snippet, two wrong snippets)
_UNIQUE = {
    "first": (
        "Remove repeated values, keeping only the first occurrence of each value, and keep "
        "the remaining values in their original order.",
        lambda nums: list(dict.fromkeys(nums)),
        "seen = set()\nresult = []\nfor x in nums:\n    if x not in seen:\n"
        "        seen.add(x)\n        result.append(x)",
        "result = list(dict.fromkeys(nums))",
        (
            ("wrong_order", "result = sorted(set(nums))"),
            ("wrong_algorithm",
             "from itertools import groupby\nresult = [k for k, _ in groupby(nums)]"),
        ),
    ),
    "consecutive": (
        "Collapse every run of equal adjacent values into a single value (values that repeat "
        "later, after a different value, are kept).",
        lambda nums: [key for key, _ in groupby(nums)],
        "result = []\nfor x in nums:\n    if not result or result[-1] != x:\n"
        "        result.append(x)",
        "from itertools import groupby\nresult = [key for key, _ in groupby(nums)]",
        (
            ("wrong_algorithm", "result = list(dict.fromkeys(nums))"),
            (
                "off_by_one",
                "result = []\nfor i in range(len(nums) - 1):\n    if nums[i] != nums[i + 1]:\n"
                "        result.append(nums[i])",
            ),
        ),
    ),
    "once": (
        "Keep only the values that occur exactly once in the list, in their original order.",
        lambda nums: [x for x in nums if Counter(nums)[x] == 1],
        "counts = {}\nfor x in nums:\n    counts[x] = counts.get(x, 0) + 1\n"
        "result = [x for x in nums if counts[x] == 1]",
        "from collections import Counter\ncounts = Counter(nums)\n"
        "result = [x for x in nums if counts[x] == 1]",
        (
            ("wrong_algorithm", "result = list(dict.fromkeys(nums))"),
            (
                "wrong_comparison",
                "from collections import Counter\ncounts = Counter(nums)\n"
                "result = [x for x in nums if counts[x] >= 1]",
            ),
        ),
    ),
    "sorted": (
        "Output the distinct values in increasing numeric order.",
        lambda nums: sorted(set(nums)),
        "result = []\nfor x in nums:\n    if x not in result:\n        result.append(x)\n"
        "result.sort()",
        "result = sorted(set(nums))",
        (
            ("wrong_order", "result = list(dict.fromkeys(nums))"),
            ("wrong_type", "result = sorted(set(str(x) for x in nums))"),
        ),
    ),
}


@family("unique_values", difficulty=1)
def unique_values(rng: random.Random) -> Draft:
    """Dedup variants (first occurrence, runs, exactly-once, sorted), optional count line."""
    layout = rng.choice(LIST_LAYOUTS)
    variant = rng.choice(list(_UNIQUE))
    with_count = rng.random() < 0.5
    statement, reference, loop, builtin, wrongs = _UNIQUE[variant]
    emit = "print(len(result))\nprint(*result)" if with_count else "print(*result)"

    def solve(text: str) -> str:
        result = reference(layout.parse(text))
        body = ints_line(result)
        return f"{len(result)}\n{body}" if with_count else body

    lists = [
        random_ints(rng, 10, 1, 6),
        [rng.randint(-9, 9)],
        [rng.randint(-9, 9)] * 5,
        random_ints(rng, 8, -5, 5),
        sorted(rng.sample(range(-30, 30), 6), reverse=True),
        random_ints(rng, 12, 0, 20),
        [3, 3, 1, 1, 3, 2, 2, 7],
    ]
    tests = make_tests([layout.render(v) for v in lists], solve)
    template = "$READ\n$BODY\n$EMIT"
    correct = (
        program(template, READ=layout.read_lines, BODY=loop, EMIT=emit),
        program("import sys\n" + template, READ=layout.read_tokens, BODY=builtin, EMIT=emit),
    )
    bad_emit = "print(len(result), *result)" if with_count else "print(result)"
    mutants = tuple(
        (kind, program(template, READ=layout.read_lines, BODY=body, EMIT=emit))
        for kind, body in wrongs
    ) + (
        ("wrong_output_format",
         program(template, READ=layout.read_lines, BODY=builtin, EMIT=bad_emit)),
    )
    output = (
        "Print the number of remaining values on the first line and the values, separated "
        "by spaces, on the second line (an empty line if none remain)."
        if with_count
        else "Print the remaining values on one line, separated by spaces (an empty line if "
        "none remain)."
    )
    description = describe(
        statement,
        layout.text + " There is at least one value (1 <= n <= 100); |values| <= 1000.",
        output,
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ---------------------------------------------------------------- sort_numbers

# (order, key) -> (phrase, key expression, wrong-direction key, reference key)
_SORT_KEYS = {
    ("asc", "value"): ("in non-decreasing order", "lambda x: x", "lambda x: -x", lambda x: x),
    ("desc", "value"): ("in non-increasing order", "lambda x: -x", "lambda x: x", lambda x: -x),
    ("asc", "abs"): (
        "by absolute value, smallest first; among equal absolute values the smaller number "
        "comes first",
        "lambda x: (abs(x), x)",
        "lambda x: (-abs(x), x)",
        lambda x: (abs(x), x),
    ),
    ("desc", "abs"): (
        "by absolute value, largest first; among equal absolute values the smaller number "
        "comes first",
        "lambda x: (-abs(x), x)",
        "lambda x: (abs(x), x)",
        lambda x: (-abs(x), x),
    ),
}

_INSERTION_SORT = r"""
    import sys
    $READ
    key = $KEY
    result = []
    for x in nums:
        i = len(result)
        while i > 0 and key(result[i - 1]) > key(x):
            i -= 1
        result.insert(i, x)
    print($SEP.join(str(x) for x in result))
"""

_BUBBLE_SORT_SHORT = r"""
    $READ
    key = $KEY
    for i in range(n):
        for j in range(n - i - 2):
            if key(nums[j]) > key(nums[j + 1]):
                nums[j], nums[j + 1] = nums[j + 1], nums[j]
    print($SEP.join(map(str, nums)))
"""


@family("sort_numbers", difficulty=1)
def sort_numbers(rng: random.Random) -> Draft:
    """Sort by value or absolute value, either direction, with a drawn output separator."""
    layout = rng.choice(LIST_LAYOUTS)
    order, keyname = rng.choice(["asc", "desc"]), rng.choice(["value", "abs"])
    sep_name, sep = rng.choice([("space", " "), ("newline", "\n")])
    phrase, key, wrong_key, key_fn = _SORT_KEYS[(order, keyname)]
    tie = rng.randint(1, 9)
    lists = [
        random_ints(rng, 6, -20, 20) + [tie, -tie],
        [rng.randint(-50, 50)],
        sorted(random_ints(rng, 5, -10, 10)),
        sorted(random_ints(rng, 6, -10, 10), reverse=True),
        random_ints(rng, 7, -3, 3),
        random_ints(rng, 12, -100, 100),
        [rng.randint(1, 9), -rng.randint(10, 99)],
    ]
    tests = make_tests(
        [layout.render(v) for v in lists],
        lambda text: sep.join(str(x) for x in sorted(layout.parse(text), key=key_fn)),
    )
    builtin = "$READ\nprint(*sorted(nums, key=$KEY), sep=$SEP)"
    lines = dict(READ=layout.read_lines, SEP=repr(sep))
    if keyname == "value":
        as_text = "$READ\nprint(*sorted(map(str, nums), reverse=$REV), sep=$SEP)"
        slip = ("wrong_type", program(as_text, **lines, REV=order == "desc"))
    else:  # sorting by abs alone leaves ties in input order
        abs_only = "abs" if order == "asc" else "lambda x: -abs(x)"
        slip = ("missed_edge_case", program(builtin, **lines, KEY=abs_only))
    correct = (
        program(builtin, **lines, KEY=key),
        program(_INSERTION_SORT, READ=layout.read_tokens, KEY=key, SEP=repr(sep)),
    )
    mutants = (
        ("wrong_order", program(builtin, **lines, KEY=wrong_key)),
        slip,
        ("off_by_one", program(_BUBBLE_SORT_SHORT, **lines, KEY=key)),
        ("wrong_output_format",
         program("$READ\nprint(sorted(nums, key=$KEY))", READ=layout.read_lines, KEY=key)),
    )
    description = describe(
        f"Sort the given integers {phrase}.",
        layout.text + " There is at least one value (1 <= n <= 100); |values| <= 1000.",
        f"Print the sorted values separated by a {sep_name}.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ---------------------------------------------------------------- range_queries

_AGGREGATES = {  # op -> (phrase, setup line of program A, combine of program B, reference)
    "sum": ("sum", "agg = sum", "acc + a[i]", sum),
    "max": ("maximum", "agg = max", "max(acc, a[i])", max),
    "min": ("minimum", "agg = min", "min(acc, a[i])", min),
    "xor": (
        "bitwise XOR",
        "from functools import reduce\nfrom operator import xor\n"
        "agg = lambda seg: reduce(xor, seg, 0)",
        "acc ^ a[i]",
        lambda seg: reduce(xor, seg, 0),
    ),
}

# indexing -> (statement phrase, slice start, slice end, end mistake, base mistake)
_INDEXING = {
    "one_inclusive": (
        "1-based and inclusive: a query l r asks about a_l, ..., a_r (1 <= l <= r <= n)",
        "l - 1", "r", "r - 1", ("l", "r + 1"),
    ),
    "zero_inclusive": (
        "0-based and inclusive: a query l r asks about a_l, ..., a_r (0 <= l <= r < n)",
        "l", "r + 1", "r", ("l - 1", "r"),
    ),
    "zero_half_open": (
        "0-based and half-open: a query l r asks about a_l, ..., a_(r-1) (0 <= l < r <= n)",
        "l", "r", "r + 1", ("l - 1", "r - 1"),
    ),
}
_QUERY_SHIFT = {"one_inclusive": (1, 1), "zero_inclusive": (0, 0), "zero_half_open": (0, 1)}


def _range_case(rng: random.Random, indexing: str, n: int, q: int, span: tuple[int, int]) -> str:
    """One test: array plus queries, always including the whole array and the first and
    last single elements (the cases that expose boundary mistakes)."""
    a = random_ints(rng, n, *span)
    spans = [(0, n - 1), (0, 0), (n - 1, n - 1)]
    while len(spans) < q:
        lo = rng.randint(0, n - 1)
        spans.append((lo, rng.randint(lo, n - 1)))
    shift_l, shift_r = _QUERY_SHIFT[indexing]
    queries = "".join(f"{lo + shift_l} {hi + shift_r}\n" for lo, hi in spans)
    return f"{n} {len(spans)}\n{ints_line(a)}\n{queries}"


def _range_answers(text: str, indexing: str, reference) -> str:
    """Reference answers of `range_queries`, one per line."""
    data = [int(tok) for tok in text.split()]
    n, q = data[0], data[1]
    a, queries = data[2 : 2 + n], data[2 + n :]
    shift_l, shift_r = _QUERY_SHIFT[indexing]
    out = []
    for k in range(q):
        lo, hi = queries[2 * k] - shift_l, queries[2 * k + 1] - shift_r
        out.append(str(reference(a[lo : hi + 1])))
    return "\n".join(out)


_SLICING = r"""
    $SETUP
    n, q = map(int, input().split())
    a = list(map(int, input().split()))
    answers = []
    for _ in range(q):
        l, r = map(int, input().split())
        answers.append(agg(a[$START:$END]))
    print($JOIN.join(map(str, answers)))
"""

_LOOPING = r"""
    import sys
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    a = [int(x) for x in data[2:2 + n]]
    pos = 2 + n
    for _ in range(q):
        l, r = int(data[pos]), int(data[pos + 1])
        pos += 2
        acc = $INIT
        for i in range($START, $END):
            acc = $COMBINE
        print(acc)
"""

_PREFIX = r"""
    import sys
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    pre = [0]
    for x in data[2:2 + n]:
        pre.append(pre[-1] $OP int(x))
    out = []
    for k in range(q):
        l, r = int(data[2 + n + 2 * k]), int(data[3 + n + 2 * k])
        out.append(pre[$END] $INV pre[$START])
    print("\n".join(map(str, out)))
"""

_PREFIX_NO_SENTINEL = r"""
    import sys
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    pre = []
    total = 0
    for x in data[2:2 + n]:
        total += int(x)
        pre.append(total)
    for k in range(q):
        l, r = int(data[2 + n + 2 * k]), int(data[3 + n + 2 * k])
        print(pre[$END - 1] - pre[$START - 1])
"""


def _range_programs(op: str, indexing: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Correct programs and mutants of `range_queries` for one (op, indexing) pair."""
    _, setup, combine, _ = _AGGREGATES[op]
    _, start, end, end_slip, (start_b, end_b) = _INDEXING[indexing]
    sliced = dict(SETUP=setup, START=start, END=end, JOIN=repr("\n"))
    folds = op in ("sum", "xor")
    init, comb = ("0", combine) if folds else ("None", f"a[i] if acc is None else {combine}")
    looped = dict(INIT=init, START=start, END=end, COMBINE=comb)
    correct = [program(_SLICING, **sliced), program(_LOOPING, **looped)]
    if folds:
        inverse = "-" if op == "sum" else "^"
        forward = "+" if op == "sum" else "^"
        correct.append(program(_PREFIX, OP=forward, INV=inverse, START=start, END=end))
    mutants = [
        ("off_by_one", program(_SLICING, **{**sliced, "END": end_slip})),
        ("off_by_one", program(_SLICING, **{**sliced, "START": start_b, "END": end_b})),
        ("wrong_output_format", program(_SLICING, **{**sliced, "JOIN": repr(" ")})),
    ]
    if op == "sum":
        mutants.append(("missed_edge_case", program(_PREFIX_NO_SENTINEL, START=start, END=end)))
    elif op == "xor":
        mutants.append(("wrong_operator", program(_PREFIX, OP="|", INV="^", START=start, END=end)))
    else:
        from_zero = program(_LOOPING, **{**looped, "INIT": "0", "COMBINE": combine})
        mutants.append(("wrong_initial_value", from_zero))
    return tuple(correct), tuple(mutants)


@family("range_queries", difficulty=3)
def range_queries(rng: random.Random) -> Draft:
    """Answer many segment queries (sum / max / min / xor) under a drawn indexing rule."""
    op, indexing = rng.choice(list(_AGGREGATES)), rng.choice(list(_INDEXING))
    phrase, reference = _AGGREGATES[op][0], _AGGREGATES[op][3]
    shapes = [(6, 4, (-20, 20)), (1, 3, (-9, 9)), (8, 5, (-50, -1)), (8, 5, (1, 50)),
              (10, 6, (-100, 100)), (2, 4, (0, 15))]
    inputs = [_range_case(rng, indexing, n, q, span) for n, q, span in shapes]
    tests = make_tests(inputs, lambda text: _range_answers(text, indexing, reference))
    correct, mutants = _range_programs(op, indexing)
    description = describe(
        f"You are given an array a of n integers and q queries. For each query print the "
        f"{phrase} of the segment it describes. Indices are {_INDEXING[indexing][0]}.",
        "The first line contains n and q (1 <= n, q <= 100). The second line contains the "
        "n integers (|a_i| <= 1000). Each of the next q lines contains a query l r.",
        "Print q lines, the answer to each query in order.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)
