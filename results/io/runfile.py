"""Reading run.json for the reader: pairbench.runmodel validates, results/io/upgrade.py lifts a
version 1 run to the current shape, and errors carry the exit code of an input error
(docs/architecture.md, Exit codes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pairbench import runmodel
from pairbench.errors import EXIT_USAGE
from pairbench.runmodel import RUN_FILE, SCHEMA_VERSION, run_file_path

from .upgrade import upgrade

__all__ = ["RUN_FILE", "SCHEMA_VERSION", "RunFileError", "load_run", "run_file_path"]


class RunFileError(runmodel.RunFormatError):
    """run.json is missing or malformed; str() is one line naming the file and the problem."""

    exit_code = EXIT_USAGE  # unreadable results are an input error

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(problem, path)
        self.path: Path = path


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read, validate and upgrade a run (a run folder or its run.json); RunFileError if unusable."""
    try:
        return upgrade(runmodel.load(path))
    except runmodel.RunFormatError as error:
        raise RunFileError(error.path or run_file_path(path), error.problem) from None
