"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

JSON_INDENT = 2
# Regular files are created rw for everyone the umask allows, like open() would.
NEW_FILE_MODE = 0o666


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to a temporary file in the same folder, fsync it, rename it over."""
    target = Path(path)
    # Same folder: os.replace is atomic only within one file system.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        # Also on KeyboardInterrupt: leave no stray temporary files behind.
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(target.parent)
    return target


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Serialize `obj` as indented strict JSON (NaN and infinity refused) and write atomically."""
    text = json.dumps(obj, indent=JSON_INDENT, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _fsync_folder(folder: Path) -> None:
    # The rename lives in the folder's entry table: sync it too, so a power loss after we
    # return cannot bring the old file back. Not every platform can open a folder.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
