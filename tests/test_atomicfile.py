"""Atomic writes: the old file or the new one, never half of one, and no leftovers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pairbench.atomicfile import write_json_atomic, write_text_atomic


def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2, "text": "ünïcode"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2, "text": "ünïcode"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_json_atomic_refuses_nan_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": math.nan})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_text_atomic_creates_a_readable_file(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "report.md", "# report\n")
    assert path.read_text(encoding="utf-8") == "# report\n"
    assert path.stat().st_mode & 0o444  # not the 0600 of a bare temporary file
