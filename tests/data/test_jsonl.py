"""JSONL reading and atomic writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from weighted_mtp.data import read_jsonl, write_jsonl


def test_round_trip_keeps_unicode_nesting_and_types(tmp_path: Path) -> None:
    records = [
        {"name": "héllo ✓ 日本", "nested": {"list": [1, 2.5, None, True], "s": "a\nb\t\"q\""}},
        {"code": "def f(x):\n    return x  # ü\n", "n": 0, "flag": False},
    ]
    path = tmp_path / "deep" / "dir" / "records.jsonl"  # parents are created

    write_jsonl(path, records)

    assert read_jsonl(path) == records
    text = path.read_text(encoding="utf-8")
    assert "héllo ✓ 日本" in text  # written as UTF-8, not \u-escaped
    assert text.count("\n") == 2


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")

    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n{"a": 3}\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"bad\.jsonl:3: invalid JSON") as error:
        read_jsonl(path)
    assert str(path) in str(error.value)


def test_non_object_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"list\.jsonl:2: expected a JSON object.*list"):
        read_jsonl(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "absent.jsonl")


def test_write_replaces_existing_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [{"a": 1}, {"a": 2}])

    write_jsonl(path, [{"b": 3}])

    assert read_jsonl(path) == [{"b": 3}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


def test_failed_write_keeps_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [{"a": 1}])

    with pytest.raises(TypeError, match="record 1"):
        write_jsonl(path, [{"a": 2}, {"bad": object()}])

    assert read_jsonl(path) == [{"a": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


def test_nan_is_refused_because_it_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="record 0"):
        write_jsonl(tmp_path / "r.jsonl", [{"x": float("nan")}])
    assert list(tmp_path.iterdir()) == []


def test_non_utf8_byte_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"name": "caf\xe9"}\n{"a": 3}\n')  # Latin-1 é on line 3

    with pytest.raises(ValueError, match=r"latin1\.jsonl:3: not UTF-8 \(byte 0xe9 at column 14\)"):
        read_jsonl(path)
