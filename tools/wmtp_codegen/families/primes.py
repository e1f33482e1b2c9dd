"""Task families about primes and divisors: primality, factors, prime counting."""

from __future__ import annotations

import random

from .arithmetic import numbers_of
from .base import (
    Draft,
    block,
    describe,
    family,
    make_tests,
    miscased,
    program,
    yes_no_words,
)

_NUMBER_LAYOUTS = {  # layout -> (input sentence, reading code, stdin renderer)
    "lines": ("Each of the next t lines contains one integer.",
              "nums = [int(input()) for _ in range(t)]",
              lambda values: "".join(f"{v}\n" for v in values)),
    "row": ("The second line contains t integers separated by spaces.",
            "nums = list(map(int, input().split()))",
            lambda values: " ".join(map(str, values)) + "\n"),
}


def _reference_is_prime(n: int) -> bool:
    """Reference primality by trial division."""
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


# ----------------------------------------------------------------- prime_check

_PRIME_TASKS = ("is_prime", "smallest_factor", "divisor_count", "count_primes_in_list")

_TRIAL_DIVISION = r"""
    t = int(input())
    $READ
    def is_prime(n):
        if n < $LOW:
            return False
        i = 2
        while i * i $CMP n:
            if n % i == 0:
                return False
            i += 1
        return True
    def smallest_factor(n):
        if n < 2:
            return n
        d = $D0
        while d * d $CMP n:
            if n % d == 0:
                return d
            d += 1
        return n
    def divisor_count(n):
        c = 0
        i = 1
        while i * i $CMP n:
            if n % i == 0:
                c += $PAIR
            i += 1
        return c
    $EMIT
"""
_BRUTE_FORCE = r"""
    import sys
    nums = [int(tok) for tok in sys.stdin.read().split()[1:]]
    def is_prime(n):
        return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
    def smallest_factor(n):
        return n if n < 2 else next(d for d in range(2, $TOP) if n % d == 0)
    def divisor_count(n):
        return sum(1 for d in range(1, $TOP) if n % d == 0)
    $EMIT
"""


def _prime_emit(task: str, yes: str, no: str) -> str:
    """The output code shared by both program styles of `prime_check`."""
    return {
        "is_prime": f"for n in nums:\n    print({yes!r} if is_prime(n) else {no!r})",
        "smallest_factor": "for n in nums:\n    print(smallest_factor(n))",
        "divisor_count": "for n in nums:\n    print(divisor_count(n))",
        "count_primes_in_list": "print(sum(1 for n in nums if is_prime(n)))",
    }[task]


def _prime_answer(task: str, values: list[int], yes: str, no: str) -> str:
    """Reference answers of `prime_check`."""
    if task == "count_primes_in_list":
        return str(sum(_reference_is_prime(n) for n in values))
    if task == "is_prime":
        return "\n".join(yes if _reference_is_prime(n) else no for n in values)
    divisors = [[d for d in range(1, n + 1) if n % d == 0] for n in values]
    if task == "smallest_factor":
        return "\n".join(str(ds[1] if len(ds) > 1 else ds[0]) for ds in divisors)
    return "\n".join(str(len(ds)) for ds in divisors)


_PRIME_STATEMENTS = {
    "is_prime": "For each given integer n decide whether it is prime. 0 and 1 are not prime.",
    "smallest_factor": "For each given integer n print its smallest divisor greater than 1 "
    "(n itself when n is prime); for n = 1 print 1.",
    "divisor_count": "For each given integer n print how many positive divisors it has.",
    "count_primes_in_list": "Count how many of the given integers are prime. "
    "0 and 1 are not prime.",
}


@family("prime_check", difficulty=1)
def prime_check(rng: random.Random) -> Draft:
    """Primality, smallest factor, divisor count, or prime count over given numbers."""
    task, layout = rng.choice(_PRIME_TASKS), rng.choice(list(_NUMBER_LAYOUTS))
    yes, no = yes_no_words(rng)
    read_text, read_code, render = _NUMBER_LAYOUTS[layout]
    pools = [
        [rng.randint(2, 200) for _ in range(4)],
        [1, 2, 3, 4],
        [9, 25, 49, 121],
        [97, 7919, 99991],
        [rng.randint(1, 10**5) for _ in range(5)],
        [1],
        [rng.choice([15, 35, 77, 91])],
    ]
    inputs = [f"{len(p)}\n" + render(p) for p in pools]
    tests = make_tests(inputs, lambda text: _prime_answer(task, numbers_of(text), yes, no))
    emit = block(_prime_emit(task, yes, no), 0)
    base = dict(READ=read_code, LOW=2, CMP="<=", D0=2, PAIR="1 if i * i == n else 2", EMIT=emit)
    correct = (program(_TRIAL_DIVISION, **base), program(_BRUTE_FORCE, EMIT=emit, TOP="n + 1"))
    mutants = [("off_by_one", program(_TRIAL_DIVISION, **{**base, "CMP": "<"}))]
    if task in ("is_prime", "count_primes_in_list"):
        mutants.append(("missed_edge_case", program(_TRIAL_DIVISION, **{**base, "LOW": 0})))
        mutants.append(("wrong_comparison", program(_TRIAL_DIVISION, **{**base, "LOW": 3})))
    if task == "is_prime":
        shouting = block(_prime_emit(task, miscased(yes), miscased(no)), 0)
        mutants.append(("wrong_case", program(_TRIAL_DIVISION, **{**base, "EMIT": shouting})))
    if task == "smallest_factor":
        mutants.append(("wrong_initial_value", program(_TRIAL_DIVISION, **{**base, "D0": 1})))
    if task == "divisor_count":
        mutants.append(("missed_edge_case", program(_TRIAL_DIVISION, **{**base, "PAIR": "2"})))
    if task in ("smallest_factor", "divisor_count"):
        mutants.append(("off_by_one", program(_BRUTE_FORCE, EMIT=emit, TOP="n")))
    output = {
        "is_prime": f"For each n print {yes} if it is prime and {no} otherwise, one per line.",
        "count_primes_in_list": "Print a single integer: the number of primes.",
    }.get(task, "Print t lines, the answer for each n in order.")
    description = describe(
        _PRIME_STATEMENTS[task],
        f"The first line contains an integer t (1 <= t <= 10). {read_text} "
        "Each number n satisfies 1 <= n <= 10^5.",
        output,
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))


# ---------------------------------------------------------------- count_primes

_UP_TO = "n (0 <= n <= 20000)"
_COUNT_TASKS = {  # task -> (statement, query text)
    "count_le": ("For each given n print how many primes are less than or equal to n.", _UP_TO),
    "count_lt": ("For each given n print how many primes are strictly less than n.", _UP_TO),
    "sum_le": ("For each given n print the sum of all primes less than or equal to n.", _UP_TO),
    "sum_lt": ("For each given n print the sum of all primes strictly less than n.", _UP_TO),
    "kth": ("For each given k print the k-th prime number (the 1st prime is 2).",
            "k (1 <= k <= 2000)"),
}
_SIEVE = r"""
    t = int(input())
    $READ
    limit = $LIMIT
    sieve = [True] * (limit + 1)
    sieve[0] = False
    $MARK_ONE
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            for j in range(i * i, limit$SIEVE_END, i):
                sieve[j] = False
    primes = [i for i in range(limit + 1) if sieve[i]]
    for q in nums:
        print($ANSWER)
"""
_INCREMENTAL = r"""
    import sys
    nums = [int(tok) for tok in sys.stdin.read().split()[1:]]
    primes = []
    candidate = 2
    while $MORE:
        is_prime = True
        for p in primes:
            if p * p > candidate:
                break
            if candidate % p == 0:
                is_prime = False
                break
        if is_prime:
            primes.append(candidate)
        candidate += 1
    for q in nums:
        print($ANSWER)
"""

_COUNT_ANSWERS = {  # task -> (answer expression, its off-by-one slip)
    "count_le": ("sum(1 for p in primes if p <= q)", "sum(1 for p in primes if p < q)"),
    "count_lt": ("sum(1 for p in primes if p < q)", "sum(1 for p in primes if p <= q)"),
    "sum_le": ("sum(p for p in primes if p <= q)", "sum(p for p in primes if p < q)"),
    "sum_lt": ("sum(p for p in primes if p < q)", "sum(p for p in primes if p <= q)"),
    "kth": ("primes[q - 1]", "primes[q]"),
}


def _count_reference(task: str, q: int, primes: list[int]) -> int:
    """Reference answer of `count_primes` from a precomputed prime list."""
    if task == "kth":
        return primes[q - 1]
    included = [p for p in primes if (p <= q if task.endswith("_le") else p < q)]
    return sum(included) if task.startswith("sum") else len(included)


@family("count_primes", difficulty=3)
def count_primes(rng: random.Random) -> Draft:
    """Prime counting / prime sums up to n, or the k-th prime, via a sieve."""
    task, layout = rng.choice(list(_COUNT_TASKS)), rng.choice(list(_NUMBER_LAYOUTS))
    statement, query = _COUNT_TASKS[task]
    read_text, read_code, render = _NUMBER_LAYOUTS[layout]
    kth = task == "kth"
    if kth:
        drawn = [rng.randint(11, 1999) for _ in range(3)]
        pools = [[1, 2, 3], [5, 10], [2000], drawn, [1], [100, 25]]
    else:
        drawn = [rng.randint(1000, 20000) for _ in range(3)]
        pools = [[10, 2, 1], [0], [97, 13], [25, 49, 100], [20000], drawn]
    primes = [n for n in range(20001) if _reference_is_prime(n)]
    tests = make_tests(
        [f"{len(p)}\n" + render(p) for p in pools],
        lambda text: "\n".join(str(_count_reference(task, q, primes)) for q in numbers_of(text)),
    )
    answer, slip = _COUNT_ANSWERS[task]
    limit = "20000" if kth else "max(nums + [2])"
    sieve = dict(READ=read_code, LIMIT=limit, MARK_ONE="sieve[1] = False", SIEVE_END=" + 1",
                 ANSWER=answer)
    more = "len(primes) < max(nums)" if kth else "candidate <= max(nums)"
    correct = (program(_SIEVE, **sieve), program(_INCREMENTAL, MORE=more, ANSWER=answer))
    mutants = [
        ("off_by_one", program(_SIEVE, **{**sieve, "ANSWER": slip})),
        ("missed_edge_case", program(_SIEVE, **{**sieve, "MARK_ONE": ""})),
    ]
    if kth:
        mutants.append(("wrong_constant", program(_SIEVE, **{**sieve, "LIMIT": "2 * max(nums)"})))
    else:
        mutants.append(("missed_edge_case", program(_SIEVE, **{**sieve, "LIMIT": "max(nums)"})))
        mutants.append(("off_by_one", program(_SIEVE, **{**sieve, "SIEVE_END": ""})))
    description = describe(
        statement,
        f"The first line contains an integer t (1 <= t <= 10). {read_text} "
        f"Every query is an integer {query}.",
        "Print one line per query, in order.",
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))
