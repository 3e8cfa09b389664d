"""Reading and writing run.json, the single source of truth of a run (docs/run-format.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pairbench.atomicfile import write_json_atomic
from pairbench.errors import EXIT_USAGE

from .schema import SCHEMA_VERSION, Run

__all__ = [
    "RUN_FILE",
    "SCHEMA_VERSION",
    "RunFileError",
    "load_run",
    "run_file_path",
    "write_json_atomic",
]

RUN_FILE = "run.json"
# How much of an offending value to quote in an error line.
QUOTED_INPUT_CHARS = 40


class RunFileError(Exception):
    """run.json is missing or malformed; str() is one line naming the file and the problem."""

    exit_code = EXIT_USAGE  # unreadable results are an input error

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def run_file_path(path: str | os.PathLike[str]) -> Path:
    """The run.json of a run folder, or the path itself when it names a file."""
    given = Path(path)
    return given / RUN_FILE if given.is_dir() else given


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run (a run folder or its run.json); raise RunFileError if unusable."""
    file = run_file_path(path)
    data = _parse(file, _read(file))
    if not isinstance(data, dict):
        raise RunFileError(file, f"top level is a JSON {type(data).__name__}, not an object")
    if "schema_version" not in data:
        raise RunFileError(file, "missing key schema_version (is this a pairbench run.json?)")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise RunFileError(
            file, f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
    try:
        Run.model_validate(data)
    except ValidationError as error:
        raise RunFileError(file, _describe(error)) from None
    return data


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "" if file.name == RUN_FILE else f" (expected a run folder or its {RUN_FILE})"
        raise RunFileError(file, f"no such file{hint}") from None
    except UnicodeDecodeError as error:
        raise RunFileError(file, f"not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise RunFileError(file, f"cannot read: {error.strerror or error}") from None


def _parse(file: Path, text: str) -> Any:
    if not text.strip():
        raise RunFileError(file, "empty file (interrupted before the first write?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # An error at the very end of the text means the document stopped early; so does a
        # string that never closes (json reports where it started, not where the text ended).
        truncated = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        what = "not valid JSON (truncated?)" if truncated else f"not valid JSON ({error.msg})"
        raise RunFileError(file, f"{what} at line {error.lineno} column {error.colno}") from None


def _describe(error: ValidationError) -> str:
    """The first validation problem as one line, e.g. `pairs.x.trials[3].histogram: ...`."""
    problems = error.errors()
    first = problems[0]
    where = _location(first["loc"])
    if first["type"] == "missing":
        line = f"missing key {where}"
    else:
        prefix = f"{where}: " if where else ""
        line = f"{prefix}{first['msg']}{_quote(first.get('input'))}"
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problems)"
    return " ".join(line.split())  # one line, whatever the messages contain


def _quote(value: Any) -> str:
    """` (got 'x')` for a scalar offending value; nothing for whole records."""
    if isinstance(value, dict | list):
        return ""
    quoted = repr(value)
    if len(quoted) > QUOTED_INPUT_CHARS:
        quoted = quoted[: QUOTED_INPUT_CHARS - 3] + "..."
    return f" (got {quoted})"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
