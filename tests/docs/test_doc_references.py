"""Docstrings and docs point at documents and sections that exist.

The code cites its reference as ``docs/X.md``, ``docs/X.md, "Section"`` or
``docs/X.md §N``; a renamed heading or a deleted page would otherwise leave readers
searching for a section that is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "tools").rglob("*.py"))]
REFERENCE = re.compile(r'(docs/[A-Za-z_/]+\.md)(?:, "([^"]+)"| §(\d+))?')


def _references() -> list[tuple[str, str, str | None, str | None]]:
    found = []
    for path in SOURCES:
        for match in REFERENCE.finditer(path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2), match.group(3)))
    return found


def test_there_are_references_to_check():
    assert len(_references()) > 50


@pytest.mark.parametrize("source, doc, section, number", _references(),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_reference_resolves(source, doc, section, number):
    document = ROOT / doc
    assert document.is_file(), f"{source} cites {doc}, which does not exist"
    headings = [line.lstrip("#").strip() for line in document.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    if section:
        assert any(section in heading for heading in headings), \
            f'{source} cites {doc}, "{section}": no such heading'
    if number:
        assert any(re.match(rf"{number}\.\s", heading) for heading in headings), \
            f"{source} cites {doc} §{number}: no heading numbered {number}."
    assert "DESIGN §" not in (ROOT / source).read_text(encoding="utf-8"), f"{source} cites DESIGN"
