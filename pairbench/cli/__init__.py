"""The `pairbench` command: composes the engine (harness) and the reader (results) from above.

Nothing imports this package (docs/architecture.md, Layers). Each command's module is imported
when the command is used (main.COMMAND_MODULES), so a quick command starts quickly.
"""

from .main import main

__all__ = ["main"]
