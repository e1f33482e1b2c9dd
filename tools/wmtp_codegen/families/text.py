"""Task families over lines of text: counting letters, reversing, palindromes, vowels."""

from __future__ import annotations

import random

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

_WORDS = (
    "apple banana cherry yellow rhythm system python stack queue array string binary "
    "tree graph cat dog otter eagle lynx myth gypsy crypt sky fly level radar noon civic "
    "kayak refer madam rotor tenet stats data input output loop yield vivid bubble"
).split()

_LINES_INPUT = (
    "The first line contains an integer t (1 <= t <= 10). Each of the next t lines "
    "contains a line of text of at most 100 characters."
)


def _case(word: str, rng: random.Random) -> str:
    """Randomly capitalise a word so case handling is exercised."""
    style = rng.random()
    if style < 0.2:
        return word.upper()
    if style < 0.45:
        return word.capitalize()
    return word


def random_line(rng: random.Random, n_words: int) -> str:
    """A line of ``n_words`` vocabulary words with random capitalisation."""
    return " ".join(_case(rng.choice(_WORDS), rng) for _ in range(n_words))


def random_lines(rng: random.Random, max_lines: int, max_words: int) -> list[str]:
    """One to ``max_lines`` random lines of two to ``max_words`` words each."""
    return [random_line(rng, rng.randint(2, max_words)) for _ in range(rng.randint(1, max_lines))]


def lines_input(lines: list[str]) -> str:
    """Stdin text for the "t, then t lines" layout shared by the text families."""
    return f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines)


def read_lines(text: str) -> list[str]:
    """Parse the "t, then t lines" layout (used by the references)."""
    rows = text.split("\n")
    return rows[1 : int(rows[0]) + 1]


# ------------------------------------------------------------------ count_char

_PER_LINE_LOOP = r"""
    t = int(input())
    for _ in range(t):
        line = input()$LOWER
        print($COUNT)
"""

_PER_LINE_SCAN = r"""
    import sys
    lines = sys.stdin.read().split("\n")
    t = int(lines[0])
    for line in lines[1:t + 1]:
        total = 0
        for ch in line:
            if $TEST:
                total += 1
        print(total)
"""

_PER_LINE_INDEXED = r"""
    t = int(input())
    for _ in range(t):
        line = input()
        total = 0
        for i in range(1, len(line)):
            if $TEST:
                total += 1
        print(total)
"""


@family("count_char", difficulty=1)
def count_char(rng: random.Random) -> Draft:
    """Occurrences of a drawn letter per line, case-sensitive or not."""
    letter = rng.choice("aeiostnrly")
    insensitive = rng.random() < 0.5
    upper = letter.upper()

    def count(line: str) -> int:
        return (line.lower() if insensitive else line).count(letter)

    edge = [
        f"{letter}{letter}{rng.choice(_WORDS)} {upper}{rng.choice(_WORDS)}",
        "",
        f"{upper}{upper} {letter}",
    ]
    groups = [random_lines(rng, 4, 6) for _ in range(4)]
    groups.insert(1, edge)
    groups.append([f"{letter * 3} {upper} {letter}x{letter}"])
    tests = make_tests(
        [lines_input(g) for g in groups],
        lambda text: "\n".join(str(count(line)) for line in read_lines(text)),
    )
    loop = dict(LOWER=".lower()" if insensitive else "", COUNT=f"line.count({letter!r})")
    test = f"ch in {(letter, upper)!r}" if insensitive else f"ch == {letter!r}"
    case_slip = ("missed_edge_case", "") if insensitive else ("wrong_case", ".lower()")
    words_with = f"sum(1 for w in line.split() if {letter!r} in w)"
    correct = (program(_PER_LINE_LOOP, **loop), program(_PER_LINE_SCAN, TEST=test))
    mutants = (
        (case_slip[0], program(_PER_LINE_LOOP, **{**loop, "LOWER": case_slip[1]})),
        ("off_by_one", program(_PER_LINE_INDEXED, TEST=test.replace("ch", "line[i]"))),
        (
            "wrong_algorithm",
            program(_PER_LINE_LOOP, **{**loop, "COUNT": words_with}),
        ),
    )
    rule = (
        f"Both '{letter}' and '{upper}' count." if insensitive
        else f"Only the lowercase letter '{letter}' counts; '{upper}' does not."
    )
    description = describe(
        f"For each line of text, count how many times the letter '{letter}' occurs in it. {rule}",
        _LINES_INPUT + " A line may be empty.",
        "Print t lines: the count for each line of text, in order.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ---------------------------------------------------------------- reverse_text

_REVERSALS = {  # variant -> (phrase, reference, expression, loop snippet, off-by-one expression)
    "chars": (
        "the line with its characters in reverse order",
        lambda line: line[::-1],
        "line[::-1]",
        'res = ""\nfor ch in line:\n    res = ch + res',
        "line[len(line) - 1:0:-1]",
    ),
    "words": (
        "the words of the line in reverse order",
        lambda line: " ".join(line.split()[::-1]),
        '" ".join(line.split()[::-1])',
        "words = line.split()\nparts = []\nfor i in range(len(words) - 1, -1, -1):\n"
        '    parts.append(words[i])\nres = " ".join(parts)',
        '" ".join(line.split()[-1:0:-1])',
    ),
    "each_word": (
        "every word of the line reversed, the words staying in their original order",
        lambda line: " ".join(w[::-1] for w in line.split()),
        '" ".join(w[::-1] for w in line.split())',
        'parts = []\nfor w in line.split():\n    rev = ""\n    for ch in w:\n'
        '        rev = ch + rev\n    parts.append(rev)\nres = " ".join(parts)',
        '" ".join(w[len(w) - 1:0:-1] for w in line.split())',
    ),
}
_CASES = {  # case rule -> (phrase, method call, reference)
    "keep": ("Keep every letter's case as it is.", "", str),
    "upper": ("Print all letters in upper case.", ".upper()", str.upper),
    "lower": ("Print all letters in lower case.", ".lower()", str.lower),
    "title": (
        "Then capitalise each word (first letter upper case, the rest lower case), "
        "as Python's str.title() does.",
        ".title()",
        str.title,
    ),
}
_REVERSE_EXPR = r"""
    t = int(input())
    for _ in range(t):
        line = input()
        print($EXPR$CASE)
"""
_REVERSE_LOOP = r"""
    import sys
    rows = sys.stdin.read().split("\n")
    for line in rows[1:int(rows[0]) + 1]:
        $BODY
        print(res$CASE)
"""


@family("reverse_text", difficulty=1)
def reverse_text(rng: random.Random) -> Draft:
    """Reverse characters, word order or each word, then apply a drawn case rule."""
    variant, case = rng.choice(list(_REVERSALS)), rng.choice(list(_CASES))
    phrase, reference, expr, loop_body, short_expr = _REVERSALS[variant]
    case_phrase, call, recase = _CASES[case]
    wrong_variant = rng.choice([v for v in _REVERSALS if v != variant])

    def solve(text: str) -> str:
        return "\n".join(recase(reference(line)) for line in read_lines(text))

    groups = [random_lines(rng, 3, 5) for _ in range(4)]
    groups.insert(1, [rng.choice(_WORDS).capitalize(), "x", f"Ab {rng.choice(_WORDS)}"])
    groups.append([random_line(rng, 7), "Z y"])
    tests = make_tests([lines_input(g) for g in groups], solve)
    body = loop_body.replace("\n", "\n    ")
    correct = (
        program(_REVERSE_EXPR, EXPR=expr, CASE=call),
        program(_REVERSE_LOOP, BODY=body, CASE=call),
    )
    case_slip = ".lower()" if case == "keep" else ""
    if variant == "chars":
        misjoined = "' '.join(reversed(line))"
    else:
        misjoined = expr.replace('" ".join', '"".join')
    shape = ("wrong_output_format", program(_REVERSE_EXPR, EXPR=misjoined, CASE=call))
    mutants = (
        ("off_by_one", program(_REVERSE_EXPR, EXPR=short_expr, CASE=call)),
        ("wrong_algorithm", program(_REVERSE_EXPR, EXPR=_REVERSALS[wrong_variant][2], CASE=call)),
        ("wrong_case", program(_REVERSE_EXPR, EXPR=expr, CASE=case_slip)),
        shape,
    )
    description = describe(
        f"For each line of text, print {phrase}. {case_phrase} Words are separated by "
        "single spaces.",
        _LINES_INPUT,
        "Print t lines, the transformed lines in order.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ------------------------------------------------------------------ palindrome

_PAL_MODES = {  # mode -> (rule text, normalising statement of A, of B, reference)
    "exact": (
        "The comparison is exact: upper and lower case letters differ.",
        "",
        "",
        lambda s: s,
    ),
    "ignore_case": (
        "Upper and lower case versions of a letter are considered equal.",
        "s = s.lower()",
        "s = s.casefold()",
        lambda s: s.lower(),
    ),
    "letters_only": (
        "Ignore every character that is not a letter, and treat upper and lower case "
        "versions of a letter as equal.",
        's = "".join(ch.lower() for ch in s if ch.isalpha())',
        "s = [ch.lower() for ch in s if ch.isalpha()]",
        lambda s: "".join(ch.lower() for ch in s if ch.isalpha()),
    ),
}
_PAL_SLICE = r"""
    t = int(input())
    for _ in range(t):
        s = input()
        $NORM
        print($YES if s == s[::-1] else $NO)
"""
_PAL_POINTERS = r"""
    import sys
    rows = sys.stdin.read().split("\n")
    for s in rows[1:int(rows[0]) + 1]:
        $NORM
        i, j = 0, len(s) - 1
        ok = True
        while i < j:
            if s[i] != s[j]:
                ok = False
                break
            i += 1
            j -= 1
        print($YES if ok else $NO)
"""
_PAL_SKIP_FIRST = r"""
    t = int(input())
    for _ in range(t):
        s = input()
        $NORM
        ok = True
        for i in range(1, len(s) // 2):
            if s[i] != s[-1 - i]:
                ok = False
        print($YES if ok else $NO)
"""
_PAL_STRINGS = {
    "exact": ["abba", "Abba", "racecar", "ab", "a", "noon", "xyzzyx", "abca", "AbA", "tenet"],
    "ignore_case": ["Abba", "RaceCar", "ab", "a", "Noon", "abcA", "xYzZyX", "level", "bA", "Kayak"],
    "letters_only": ["A man, a plan, a canal: Panama", "Never odd or even", "ab", "!!", "a",
                     "No lemon, no melon", "Was it a car?", "Abc cba!", "xy", "Step on no pets"],
}


@family("palindrome", difficulty=1)
def palindrome(rng: random.Random) -> Draft:
    """Palindrome check per line under a drawn normalisation rule and answer wording."""
    mode = rng.choice(list(_PAL_MODES))
    yes, no = yes_no_words(rng)
    rule, norm_a, norm_b, norm = _PAL_MODES[mode]
    pool = _PAL_STRINGS[mode]
    groups = [rng.sample(pool, rng.randint(2, 5)) for _ in range(5)]
    groups.insert(1, ["ab", pool[1], "a"])
    groups.append(["xx" + rng.choice(pool)[::-1].lower() + "yx"])

    def solve(text: str) -> str:
        return "\n".join(yes if norm(s) == norm(s)[::-1] else no for s in read_lines(text))

    tests = make_tests([lines_input(g) for g in groups], solve)
    words = dict(YES=repr(yes), NO=repr(no))
    norm_slip = {
        "exact": ("wrong_case", "s = s.lower()"),
        "ignore_case": ("missed_edge_case", ""),
        "letters_only": ("missed_edge_case", "s = s.lower()"),
    }[mode]
    miscased_words = dict(YES=repr(miscased(yes)), NO=repr(miscased(no)))
    correct = (
        program(_PAL_SLICE, NORM=norm_a, **words),
        program(_PAL_POINTERS, NORM=norm_b, **words),
    )
    mutants = (
        ("off_by_one", program(_PAL_SKIP_FIRST, NORM=norm_a, **words)),
        (norm_slip[0], program(_PAL_SLICE, NORM=norm_slip[1], **words)),
        ("wrong_case", program(_PAL_SLICE, NORM=norm_a, **miscased_words)),
    )
    description = describe(
        f"For each line, decide whether it is a palindrome (reads the same forwards and "
        f"backwards). {rule} An empty string is a palindrome.",
        _LINES_INPUT,
        f"For each line print {yes} if it is a palindrome and {no} otherwise.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ----------------------------------------------------------------- vowel_count

_AGGREGATE_EMIT = {  # aggregate -> (output sentence, emitting code, reference)
    "per_line": ("Print t lines: the count for each line, in order.",
                 "for c in counts:\n    print(c)", lambda counts: "\n".join(map(str, counts))),
    "total": ("Print one integer: the total count over all lines.",
              "print(sum(counts))", lambda counts: str(sum(counts))),
    "max": ("Print one integer: the largest count among the lines.",
            "print(max(counts))", lambda counts: str(max(counts))),
}
_VOWEL_COMPREHENSION = r"""
    VOWELS = set($VSET)
    t = int(input())
    counts = []
    for _ in range(t):
        line = input()$LOWER
        counts.append(sum(1 for ch in line if $PRED))
    $EMIT
"""
_VOWEL_LOOP = r"""
    import sys
    rows = sys.stdin.read().split("\n")
    counts = []
    for line in rows[1:int(rows[0]) + 1]:
        c = 0
        for i in range($START, len(line)):
            ch = line[i].lower()
            if $PRED:
                c += 1
        counts.append(c)
    $EMIT
"""


@family("vowel_count", difficulty=1)
def vowel_count(rng: random.Random) -> Draft:
    """Count vowels or consonants per line (drawn vowel set), reported per line/total/max."""
    target = rng.choice(["vowels", "consonants"])
    vset = rng.choice(["aeiou", "aeiouy"])
    aggregate = rng.choice(list(_AGGREGATE_EMIT))
    output, emit, combine = _AGGREGATE_EMIT[aggregate]
    other_set = "aeiouy" if vset == "aeiou" else "aeiou"

    def count(line: str) -> int:
        lowered = line.lower()
        if target == "vowels":
            return sum(ch in vset for ch in lowered)
        return sum(ch.isalpha() and ch not in vset for ch in lowered)

    groups = [random_lines(rng, 4, 6) for _ in range(4)]
    groups.insert(1, ["Yes, 42 apples!", "AEIOU y", "rhythm"])
    groups.append(["Sky-high: " + random_line(rng, 3)])
    tests = make_tests(
        [lines_input(g) for g in groups],
        lambda text: combine([count(line) for line in read_lines(text)]),
    )
    pred = "ch in VOWELS" if target == "vowels" else "ch.isalpha() and ch not in VOWELS"
    loose = "ch not in VOWELS"  # counts spaces and punctuation as consonants
    comp = dict(VSET=repr(vset), LOWER=".lower()", PRED=pred, EMIT=block(emit, 0))
    loop_pred = pred.replace("VOWELS", repr(vset))
    correct = (
        program(_VOWEL_COMPREHENSION, **comp),
        program(_VOWEL_LOOP, START=0, PRED=loop_pred, EMIT=block(emit, 0)),
    )
    mutants = [
        ("missed_edge_case", program(_VOWEL_COMPREHENSION, **{**comp, "LOWER": ""})),
        ("wrong_constant", program(_VOWEL_COMPREHENSION, **{**comp, "VSET": repr(other_set)})),
        ("off_by_one", program(_VOWEL_LOOP, START=1, PRED=loop_pred, EMIT=block(emit, 0))),
    ]
    if target == "consonants":
        loose_program = program(_VOWEL_COMPREHENSION, **{**comp, "PRED": loose})
        mutants.append(("missed_edge_case", loose_program))
    letters = ", ".join(vset)
    description = describe(
        f"The vowels are the letters {letters} (in either case). For each line of text count "
        f"its {target}" + (" (letters that are not vowels; digits, spaces and punctuation "
                            "are not letters)" if target == "consonants" else "") + ".",
        _LINES_INPUT,
        output,
        tests[0],
    )
    return Draft(description, tests, correct, tuple(mutants))
