"""`pairbench new`: a pair written from the template is listed, verified, run and reported as is.

The files go to a folder of the test's own (`--into`), loaded through PAIRBENCH_PAIRS and
PAIRBENCH_SCENARIOS, so the package's folders are never touched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import asyncpg

from pairbench.harness import services

NAME = "demo_rows"
TABLE = f"{NAME}_rows"
TIMEOUT_S = 240


def _pairbench(
    command: list[str], args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )


def _table_exists(dsn: str) -> bool:
    async def check() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE))
        finally:
            await conn.close()

    return asyncio.run(check())


def test_a_bad_name_is_one_line_and_exit_2(pairbench: list[str], tmp_path: Path) -> None:
    done = _pairbench(pairbench, ["new", "Not-A-Name", "--into", str(tmp_path)])
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "pair name 'Not-A-Name'" in done.stderr
    assert not (tmp_path / "pairs").exists()


def test_new_never_overwrites(pairbench: list[str], tmp_path: Path) -> None:
    assert _pairbench(pairbench, ["new", NAME, "--into", str(tmp_path)]).returncode == 0
    module = tmp_path / "pairs" / f"{NAME}.py"
    module.write_text(module.read_text() + "# edited\n")
    again = _pairbench(pairbench, ["new", NAME, "--into", str(tmp_path)])
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert module.read_text().endswith("# edited\n")


def test_a_new_pair_is_listed_verified_run_and_reported(
    pairbench: list[str],
    server_env: dict[str, str],
    servers: services.Endpoints,
    tmp_path: Path,
) -> None:
    written = _pairbench(pairbench, ["new", NAME, "--into", str(tmp_path)])
    assert written.returncode == 0, written.stderr
    env = {
        **server_env,
        "PAIRBENCH_PAIRS": str(tmp_path / "pairs"),
        "PAIRBENCH_SCENARIOS": str(tmp_path / "scenarios"),
    }

    listed = _pairbench(pairbench, ["list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    pair = next(p for p in json.loads(listed.stdout)["pairs"] if p["name"] == NAME)
    assert [v["role"] for v in pair["variants"]] == ["bad", "good"]
    assert pair["tables"] == [TABLE]
    assert not _table_exists(servers.pg_dsn)  # listing seeds nothing

    out = tmp_path / "runs"
    run = _pairbench(
        pairbench, ["run", NAME, "--out", str(out), "--seed", "1", "--no-progress"], env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert _table_exists(servers.pg_dsn)  # seeded when it first ran
    (run_dir,) = out.iterdir()
    stored = json.loads((run_dir / "run.json").read_text())
    record = stored["pairs"][NAME]
    assert record["verification"]["passed"]
    checks = {c["name"] for c in record["verification"]["checks"]}
    assert "queries_per_request" in checks
    assert record["analysis"]["expectation"]["passed"] is True
    assert record["dataset"]["rows"] == {TABLE: 2_000}
    assert (run_dir / "report.md").exists()
    assert (run_dir / f"{NAME}-scaling.png").exists()
