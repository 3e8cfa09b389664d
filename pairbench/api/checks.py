"""Checks of everything a command or an API call was given, made before it starts any process.

Shared by the command line and the Python API (docs/architecture.md, Layers); the command
modules import it as `pairbench.cli.preflight`.

docs/architecture.md, "Exit codes": what the user gave is exit 2, what the infrastructure did is
exit 3, one line each. Folders are checked for what the command will do with them (create and
write, or read), scenarios against the targets' description and the bounds their endpoints
declare (harness/bounds.py), and given servers are parsed and then reached with a short
timeout, so a typo is never found after PostgreSQL, Valkey and the target came up.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pairbench.errors import UsageError
from pairbench.harness import bounds, catalogue, runner, scenario, services


def output_folder(path: Path, flag: str) -> None:
    """`path` is a folder the command can create (or already has) and write into.

    Tried for real (create it, write a file in it, remove both), as root too, where permission
    bits say little: a read-only file system or /proc refuse root as well. Nothing is left.
    """
    shown = f"{flag} {path}" if flag else str(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{shown}: is a file, not a folder")
    missing = path.absolute()
    while not missing.parent.exists():
        missing = missing.parent
    if missing.parent.exists() and not missing.parent.is_dir():
        raise UsageError(f"{shown}: cannot create it, {missing.parent} is a file")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"{shown}: cannot write there ({e.strerror or e})") from e
    finally:
        if created:
            _remove_empty(path.absolute(), missing)


def _remove_empty(path: Path, top: Path) -> None:
    """Remove the empty folders from `path` up to `top`, which the check created."""
    with contextlib.suppress(OSError):
        while True:
            path.rmdir()
            if path == top:
                return
            path = path.parent


def scenarios_fit(scenarios: list[scenario.Scenario], profile: str) -> None:
    """Each scenario resolves against the targets' description, and each request of `profile`
    fits what its endpoint accepts (bounds from the targets' OpenAPI document).

    Both documents come from one subprocess (catalogue.describe_and_openapi): starting the
    targets' interpreter is most of the checks' time, and the run reuses the answers.
    """
    described, document = catalogue.describe_and_openapi()
    served = [s for s in scenarios if s.pair in described.pairs]
    infos = [catalogue.resolve(s, described) for s in scenarios]
    if not served:
        return
    for info in infos:
        bounds.check(info, [profile], document, served=info.name in described.pairs)


def before_run(options: runner.RunOptions, folders: Mapping[str, Path | None]) -> None:
    """Everything a run was given: servers' addresses, folders, scenarios and their values.

    `folders`: flag -> the folder the run writes into (None: not used by this command).
    """
    given = services.parse_given(options.services)
    for flag, folder in folders.items():
        if folder is not None:
            output_folder(folder, flag)
    scenarios = options.scenarios or scenario.select(options.pairs)
    if options.suite is None:
        scenario.profile(options.profile)  # refuses an unknown profile; each scenario checks too
    for each in scenarios:
        each.load(options.profile)
    scenarios_fit(scenarios, options.profile)
    for address in given:
        services.reach(address)


def commit(ref: str) -> None:
    """`ref` names a commit of the checkout pairbench runs from (`--baseline-ref`)."""
    import subprocess

    from pairbench.harness import baseline

    root = baseline.source_root()
    found = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if found.returncode != 0:
        raise UsageError(f"--baseline-ref {ref!r}: not a commit of {root}")


def bind(host: str, port: int, flag: str = "--port", host_flag: str = "--host") -> socket.socket:
    """A socket bound to host:port (SO_REUSEADDR, as uvicorn and locust bind), or a usage error
    naming the flags."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"{host_flag} {host}: name does not resolve") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"{flag} {port}: port {port} is in use on {host}") from e
        raise UsageError(f"{host_flag} {host} {flag} {port}: cannot bind ({e.strerror})") from e
    return sock
