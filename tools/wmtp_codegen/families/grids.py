"""Task families over a matrix of integers: transforms and row/column/diagonal sums."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .base import Draft, describe, family, make_tests, program, random_ints

_MATRIX_INPUT = ("The first line contains two integers r and c (1 <= r, c <= 10). Each of "
                 "the next r lines contains c integers separated by spaces (|a| <= 1000).")


def matrix_input(rows: list[list[int]]) -> str:
    """Stdin text for the "r c, then r rows" layout."""
    return f"{len(rows)} {len(rows[0])}\n" + "".join(" ".join(map(str, row)) + "\n" for row in rows)


def parse_matrix(text: str) -> list[list[int]]:
    """Parse the "r c, then r rows" layout (used by the references)."""
    lines = text.strip("\n").split("\n")
    return [[int(v) for v in line.split()] for line in lines[1:]]


def random_matrix(
    rng: random.Random, r: int, c: int, low: int = -9, high: int = 9
) -> list[list[int]]:
    """An r x c matrix of random integers."""
    return [random_ints(rng, c, low, high) for _ in range(r)]


# ------------------------------------------------------------- matrix_transform

_TRANSFORMS = {  # name -> (phrase, zip expression, result rows, result cols, element, reference)
    "transpose": ("the transpose of the matrix (row i of the output is column i of the input)",
                  "zip(*m)", "c", "r", "m[j][i]", lambda m: [list(col) for col in zip(*m)]),
    "rotate_cw": ("the matrix rotated 90 degrees clockwise", "zip(*m[::-1])", "c", "r",
                  "m[r - 1 - j][i]", lambda m: [list(col) for col in zip(*m[::-1])]),
    "rotate_ccw": ("the matrix rotated 90 degrees counter-clockwise", "list(zip(*m))[::-1]",
                   "c", "r", "m[j][c - 1 - i]", lambda m: [list(col) for col in zip(*m)][::-1]),
    "flip_h": ("the matrix mirrored left to right (each row reversed)", "[row[::-1] for row in m]",
               "r", "c", "m[i][c - 1 - j]", lambda m: [row[::-1] for row in m]),
    "flip_v": ("the matrix mirrored top to bottom (row order reversed)", "m[::-1]", "r", "c",
               "m[r - 1 - i][j]", lambda m: m[::-1]),
}
_CONFUSED = {"transpose": "rotate_cw", "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw",
             "flip_h": "flip_v", "flip_v": "flip_h"}
_BY_ZIP = r"""
    r, c = map(int, input().split())
    m = [list(map(int, input().split())) for _ in range(r)]
    for row in $ZIP:
        print($SEP.join(map(str, row)))
"""
_BY_INDEX = r"""
    import sys
    data = sys.stdin.read().split()
    r, c = int(data[0]), int(data[1])
    m = [[int(data[2 + i * c + j]) for j in range(c)] for i in range(r)]
    for i in range($ROWS):
        out = []
        for j in range($COLS):
            out.append(str($ELEM))
        print($SEP.join(out))
"""


@family("matrix_transform", difficulty=2)
def matrix_transform(rng: random.Random) -> Draft:
    """Transpose, rotate or mirror a matrix, printed with a drawn separator."""
    name = rng.choice(list(_TRANSFORMS))
    sep_name, sep = rng.choice([("single spaces", " "), ("commas", ",")])
    phrase, zip_expr, rows, cols, elem, reference = _TRANSFORMS[name]
    shapes = [(2, 3), (1, 1), (1, 4), (4, 1), (3, 3), (2, 5), (4, 3)]
    inputs = [matrix_input(random_matrix(rng, r, c)) for r, c in shapes]
    tests = make_tests(
        inputs,
        lambda text: "\n".join(sep.join(map(str, row)) for row in reference(parse_matrix(text))),
    )
    index = dict(ROWS=rows, COLS=cols, ELEM=elem, SEP=repr(sep))
    other_sep = repr(" " if sep == "," else ", ")
    correct = (program(_BY_ZIP, ZIP=zip_expr, SEP=repr(sep)), program(_BY_INDEX, **index))
    mutants = (
        ("missed_edge_case", program(_BY_INDEX, **{**index, "ROWS": "r", "COLS": "r"})),
        ("off_by_one", program(_BY_INDEX, **{**index, "COLS": cols + " - 1"})),
        ("wrong_algorithm", program(_BY_ZIP, ZIP=_TRANSFORMS[_CONFUSED[name]][1], SEP=repr(sep))),
        ("wrong_output_format", program(_BY_ZIP, ZIP=zip_expr, SEP=other_sep)),
    )
    description = describe(
        f"You are given a matrix of integers. Print {phrase}.",
        _MATRIX_INPUT,
        "Print the resulting matrix, one row per line, the values in a row separated by "
        f"{sep_name}.",
        tests[0],
    )
    return Draft(description, tests, correct, mutants)


# ----------------------------------------------------------------- matrix_sums

@dataclass(frozen=True)
class _SumTask:
    """One variant of `matrix_sums`: wording, the two correct bodies, slips, reference."""

    phrase: str
    output: str
    builtin: str
    loop: str
    slips: tuple[tuple[str, str], ...]
    reference: Callable[[list[list[int]]], list]
    square: bool = False


_ONE_INT = "Print one integer."
_ROW_LOOP = "for i in range(r):\n    s = 0\n    for j in range(c):\n        s += m[i][j]\n"
_COL_LOOP = "for j in range(c):\n    s = 0\n    for i in range(r):\n        s += m[i][j]\n"
_BORDER = ("print(sum(m[0]) + sum(m[-1]) + sum(row[0] for row in m) + sum(row[-1] for row in m)")
_ROWS_TEXT = "the sum of every row"
_COLS_TEXT = "the sum of every column"


def _is_border(m: list[list[int]], i: int, j: int) -> bool:
    """Whether cell (i, j) lies on the border of matrix ``m``."""
    return i in (0, len(m) - 1) or j in (0, len(m[0]) - 1)


_SUMS = {
    "rows": _SumTask(
        _ROWS_TEXT, "Print r lines, the row sums from top to bottom.",
        "for row in m:\n    print(sum(row))", _ROW_LOOP + "    print(s)",
        (("off_by_one", "for i in range(r):\n    print(sum(m[i][j] for j in range(c - 1)))"),
         ("wrong_algorithm", "for col in zip(*m):\n    print(sum(col))"),
         ("wrong_output_format", "print(*[sum(row) for row in m])")),
        lambda m: [sum(row) for row in m]),
    "rows_line": _SumTask(
        _ROWS_TEXT, "Print the r row sums on one line, separated by spaces.",
        "print(*[sum(row) for row in m])",
        "sums = []\n" + _ROW_LOOP + "    sums.append(str(s))\nprint(\" \".join(sums))",
        (("off_by_one", "print(*[sum(m[i][j] for j in range(c - 1)) for i in range(r)])"),
         ("wrong_algorithm", "print(*[sum(col) for col in zip(*m)])"),
         ("wrong_output_format", "for row in m:\n    print(sum(row))")),
        lambda m: [" ".join(str(sum(row)) for row in m)]),
    "cols": _SumTask(
        _COLS_TEXT, "Print c lines, the column sums from left to right.",
        "for col in zip(*m):\n    print(sum(col))", _COL_LOOP + "    print(s)",
        (("off_by_one", "for j in range(c):\n    print(sum(m[i][j] for i in range(1, r)))"),
         ("missed_edge_case", "for j in range(r):\n    print(sum(m[i][j] for i in range(r)))"),
         ("wrong_algorithm", "for row in m:\n    print(sum(row))"),
         ("wrong_output_format", "print(*[sum(col) for col in zip(*m)])")),
        lambda m: [sum(col) for col in zip(*m)]),
    "cols_line": _SumTask(
        _COLS_TEXT, "Print the c column sums on one line, separated by spaces.",
        "print(*[sum(col) for col in zip(*m)])",
        "sums = []\n" + _COL_LOOP + "    sums.append(str(s))\nprint(\" \".join(sums))",
        (("off_by_one", "print(*[sum(m[i][j] for i in range(1, r)) for j in range(c)])"),
         ("missed_edge_case", "print(*[sum(m[i][j] for i in range(r)) for j in range(r)])"),
         ("wrong_algorithm", "print(*[sum(row) for row in m])")),
        lambda m: [" ".join(str(sum(col)) for col in zip(*m))]),
    "diag": _SumTask(
        "the sum of the main diagonal (top-left to bottom-right)", _ONE_INT,
        "print(sum(m[i][i] for i in range(r)))",
        "s = 0\nfor i in range(r):\n    s += m[i][i]\nprint(s)",
        (("off_by_one", "print(sum(m[i][i] for i in range(r - 1)))"),
         ("wrong_algorithm", "print(sum(m[i][r - 1 - i] for i in range(r)))"),
         ("wrong_initial_value", "s = m[0][0]\nfor i in range(r):\n    s += m[i][i]\nprint(s)")),
        lambda m: [sum(m[i][i] for i in range(len(m)))], square=True),
    "anti": _SumTask(
        "the sum of the anti-diagonal (top-right to bottom-left)", _ONE_INT,
        "print(sum(m[i][r - 1 - i] for i in range(r)))",
        "s = 0\nfor i in range(r):\n    s += m[i][c - 1 - i]\nprint(s)",
        (("off_by_one", "print(sum(m[i][r - i] for i in range(r)))"),
         ("wrong_algorithm", "print(sum(m[i][i] for i in range(r)))"),
         ("wrong_initial_value",
          "s = m[0][-1]\nfor i in range(r):\n    s += m[i][r - 1 - i]\nprint(s)")),
        lambda m: [sum(m[i][len(m) - 1 - i] for i in range(len(m)))], square=True),
    "border": _SumTask(
        "the sum of the elements on the border (first or last row, first or last column); "
        "every element counts once", _ONE_INT,
        "print(sum(m[i][j] for i in range(r) for j in range(c) "
        "if i in (0, r - 1) or j in (0, c - 1)))",
        "s = 0\nfor i in range(r):\n    for j in range(c):\n"
        "        if i == 0 or i == r - 1 or j == 0 or j == c - 1:\n"
        "            s += m[i][j]\nprint(s)",
        (("missed_edge_case", _BORDER + ")"),
         ("missed_edge_case", _BORDER + " - m[0][0] - m[0][-1] - m[-1][0] - m[-1][-1])"),
         ("off_by_one", "inner = sum(m[i][j] for i in range(1, r - 1) for j in range(1, c))\n"
                        "print(sum(map(sum, m)) - inner)")),
        lambda m: [sum(v for i, row in enumerate(m) for j, v in enumerate(row)
                       if _is_border(m, i, j))]),
    "max_row": _SumTask(
        "the largest row sum", _ONE_INT, "print(max(sum(row) for row in m))",
        "best = None\nfor row in m:\n    s = sum(row)\n    if best is None or s > best:\n"
        "        best = s\nprint(best)",
        (("wrong_initial_value",
          "best = 0\nfor row in m:\n    best = max(best, sum(row))\nprint(best)"),
         ("wrong_algorithm", "print(max(sum(col) for col in zip(*m)))"),
         ("off_by_one", "print(max(sum(m[i]) for i in range(r - 1)))")),
        lambda m: [max(sum(row) for row in m)]),
    "max_col": _SumTask(
        "the largest column sum", _ONE_INT, "print(max(map(sum, zip(*m))))",
        "best = None\n" + _COL_LOOP
        + "    if best is None or s > best:\n        best = s\nprint(best)",
        (("wrong_initial_value",
          "best = 0\nfor col in zip(*m):\n    best = max(best, sum(col))\nprint(best)"),
         ("wrong_algorithm", "print(max(sum(row) for row in m))"),
         ("off_by_one", "print(max(sum(m[i][j] for i in range(r)) for j in range(c - 1)))")),
        lambda m: [max(sum(col) for col in zip(*m))]),
    "total": _SumTask(
        "the sum of all elements", _ONE_INT, "print(sum(map(sum, m)))",
        "s = 0\nfor row in m:\n    for v in row:\n        s += v\nprint(s)",
        (("off_by_one", "print(sum(sum(m[i]) for i in range(r - 1)))"),
         ("missed_edge_case", "print(sum(m[i][j] for i in range(r) for j in range(r)))"),
         ("wrong_initial_value", "s = m[0][0]\nfor row in m:\n    s += sum(row)\nprint(s)")),
        lambda m: [sum(map(sum, m))]),
}
_READ_MATRIX = (
    "r, c = map(int, input().split())\n"
    "m = [list(map(int, input().split())) for _ in range(r)]\n$BODY"
)
_READ_MATRIX_TOKENS = (
    "import sys\ndata = sys.stdin.read().split()\nr, c = int(data[0]), int(data[1])\n"
    "m = [[int(data[2 + i * c + j]) for j in range(c)] for i in range(r)]\n$BODY"
)


@family("matrix_sums", difficulty=1)
def matrix_sums(rng: random.Random) -> Draft:
    """Row / column / diagonal / border sums of a matrix."""
    task = _SUMS[rng.choice(list(_SUMS))]
    if task.square:
        shapes = [(3, 3), (1, 1), (2, 2), (4, 4), (5, 5), (3, 3)]
    else:
        shapes = [(2, 3), (1, 1), (1, 4), (4, 1), (3, 3), (3, 5), (4, 2)]
    matrices = [random_matrix(rng, r, c) for r, c in shapes]
    matrices[-1] = random_matrix(rng, *shapes[-1], low=-50, high=-1)
    tests = make_tests(
        [matrix_input(mat) for mat in matrices],
        lambda text: "\n".join(map(str, task.reference(parse_matrix(text)))),
    )
    correct = (
        program(_READ_MATRIX, BODY=task.builtin),
        program(_READ_MATRIX_TOKENS, BODY=task.loop),
    )
    mutants = tuple((kind, program(_READ_MATRIX, BODY=body)) for kind, body in task.slips)
    matrix_text = _MATRIX_INPUT + (" The matrix is square (r = c)." if task.square else "")
    statement = f"Compute {task.phrase} of the given matrix."
    description = describe(statement, matrix_text, task.output, tests[0])
    return Draft(description, tests, correct, mutants)
