"""`python -m pairbench.targets`: describe prints what /pairs serves; seed seeds only what it is
told, one JSON line per pair, and a bad input is one line on stderr and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from pairbench.harness import procs, server, services

FIXTURE_PAIRS = Path(__file__).resolve().parent.parent / "fixtures" / "pairs"
SEED_KEYS = {"pair", "skipped", "seconds", "rows", "identity"}
COMMAND_TIMEOUT_S = 120
ERROR_PREFIX = "pairbench-targets: error: "


def _targets(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pairbench.targets", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, **env},
    )


def _exists(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX)
    return lines[0]


def test_describe_prints_what_pairs_serves(target: httpx.Client) -> None:
    result = _targets("describe")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == target.get("/pairs").json()


def test_seed_one_pair_leaves_the_others_absent(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("main_one_pair")
    env = {"PAIRBENCH_PG_DSN": dsn, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)}
    result = _targets("seed", "--profile", "test", "--pair", "fixture_writes", **env)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert set(line) == SEED_KEYS
    assert line["pair"] == "fixture_writes" and line["skipped"] is False
    assert line["rows"] == {"fixture_notes": 10}
    assert line["identity"]["sizes"] == {"notes": 10}
    assert _exists(dsn, "fixture_notes")
    described = json.loads(_targets("describe", **env).stdout)["pairs"]
    others = [t for p in described if p["name"] != "fixture_writes" for t in p["tables"]]
    assert others and not any(_exists(dsn, t) for t in others)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seed", "--profile", "huge"], "unknown profile 'huge'"),
        (["seed", "--profile", "test", "--pair", "nope"], "unknown pair(s) nope"),
        (["seed"], "--profile"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_a_bad_input_is_one_line_and_exit_2(
    servers: services.Endpoints, args: list[str], message: str
) -> None:
    result = _targets(*args, PAIRBENCH_PG_DSN=servers.pg_dsn)
    assert result.returncode == 2
    assert message in _one_error_line(result)


def _broken_pair(folder: Path, sizes: str, reads: str) -> None:
    (folder / "broken.py").write_text(
        f'''
from pairbench.targets.registry import Knob, Pair

pair = Pair(name="broken", title="t", summary="s", knob=Knob("n", "n", "n"), sizes={sizes})


@pair.variant("bad")
async def slow() -> dict[str, int]:
    """Slow."""
    return {{}}


@pair.variant("good")
async def fast() -> dict[str, int]:
    """Fast."""
    return {{}}


@pair.table("broken_rows", "CREATE TABLE broken_rows (n integer)")
def _rows(size, rng):
    for n in range({reads}):
        yield (n,)
'''
    )


def test_a_size_the_generator_reads_but_the_profile_lacks_is_exit_2(
    tmp_path: Path, fresh_database: Callable[[str], str]
) -> None:
    sizes = '{p: {"rows": 3} for p in ("test", "quick", "standard", "talk")}'
    _broken_pair(tmp_path, sizes, reads='size["rowz"]')
    dsn = fresh_database("main_missing_size")
    result = _targets(
        "seed", "--profile", "test", "--pair", "broken", PAIRBENCH_PG_DSN=dsn,
        PAIRBENCH_PAIRS=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    line = _one_error_line(result)
    assert "'broken'" in line and "'test'" in line and "'rowz'" in line
    assert not _exists(dsn, "broken_rows")  # rolled back: nothing half-made


def test_a_profile_without_sizes_fails_at_load_naming_pair_and_profile(tmp_path: Path) -> None:
    _broken_pair(tmp_path, '{"test": {"rows": 3}, "quick": {"rows": 3}}', reads='size["rows"]')
    result = _targets("describe", PAIRBENCH_PAIRS=str(tmp_path))
    assert result.returncode == 2
    line = _one_error_line(result)
    assert "'broken'" in line and "'standard'" in line


def test_an_unreachable_database_is_exit_3() -> None:
    port = procs.free_port()
    dsn = f"postgresql://nobody:secret@127.0.0.1:{port}/nothing"
    result = _targets("seed", "--profile", "test", PAIRBENCH_PG_DSN=dsn)
    assert result.returncode == 3
    line = _one_error_line(result)
    assert f"PostgreSQL at 127.0.0.1:{port} is unreachable" in line
    assert "secret" not in line


def test_pairs_from_a_folder_are_described_after_the_built_in_ones() -> None:
    result = _targets("describe", PAIRBENCH_PAIRS=str(FIXTURE_PAIRS))
    assert result.returncode == 0, result.stderr
    pairs = {p["name"]: p for p in json.loads(result.stdout)["pairs"]}
    built_in = [p["name"] for p in json.loads(_targets("describe").stdout)["pairs"]]
    assert list(pairs)[: len(built_in)] == built_in  # the folder's pairs come after
    assert {"fixture_etag", "fixture_writes"} <= set(list(pairs)[len(built_in) :])
    writes = pairs["fixture_writes"]
    assert [v["method"] for v in writes["variants"]] == ["POST", "POST"]
    assert writes["equivalence"] == {"rule": "side_effect"}
    assert writes["reset"] == "/_pairbench/reset/fixture_writes"
    assert writes["state"] == "/_pairbench/state/fixture_writes"
    assert pairs["fixture_etag"]["equivalence"] == {"rule": "not_modified"}
    assert pairs["fixture_etag"]["reset"] is None


def test_fixture_pairs_serve_writes_reset_state_and_etags(
    servers: services.Endpoints,
    fresh_database: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = fresh_database("main_fixture_pairs")
    monkeypatch.setenv("PAIRBENCH_PAIRS", str(FIXTURE_PAIRS))
    seeded = _targets("seed", "--profile", "test", "--pair", "fixture_writes", PAIRBENCH_PG_DSN=dsn)
    assert seeded.returncode == 0, seeded.stderr
    running = server.start(dsn, servers.redis_url, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            initial = client.get("/_pairbench/state/fixture_writes").json()
            assert initial["notes"] == 10
            states = []
            for variant in ("one_by_one", "one_statement"):
                assert client.post(f"/fixture_writes/{variant}?n=5").status_code == 200
                states.append(client.get("/_pairbench/state/fixture_writes").json())
                assert client.post("/_pairbench/reset/fixture_writes").json() == {"deleted": 5}
                assert client.get("/_pairbench/state/fixture_writes").json() == initial
            assert states[0] == states[1] and states[0]["notes"] == 15
            assert client.get("/fixture_writes/one_by_one?n=5").status_code == 405  # POST only
            # EXPLAIN survives statements without a plan (the transaction's BEGIN and COMMIT).
            explain = {"X-Pairbench-Explain": "1"}
            client.post("/fixture_writes/one_by_one?n=2", headers=explain).raise_for_status()
            client.post("/_pairbench/reset/fixture_writes").raise_for_status()
            access = [p["access"] for p in client.get("/_pairbench/plans").json()]
            assert access == [[], *[["ModifyTable on fixture_notes"]] * 2, []]
            for variant in ("rebuild", "stored"):
                first = client.get(f"/fixture_etag/{variant}?kb=4")
                etag = first.headers["etag"]
                again = client.get(f"/fixture_etag/{variant}?kb=4", headers={"If-None-Match": etag})
                assert (first.status_code, again.status_code) == (200, 304)
                assert again.headers["etag"] == etag and again.content == b""
    finally:
        running.stop()


def test_openapi_is_printed_with_no_database_and_carries_the_bounds() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL")
    }
    result = subprocess.run(
        [sys.executable, "-m", "pairbench.targets", "openapi"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)},
    )
    assert result.returncode == 0, result.stderr
    operation = json.loads(result.stdout)["paths"]["/fixture_rows/join"]["get"]
    (n,) = [p for p in operation["parameters"] if p["name"] == "n"]
    assert n["in"] == "query" and n["schema"]["minimum"] == 1 and n["schema"]["maximum"] > 1


def test_documents_prints_describe_and_openapi_as_each_alone() -> None:
    # One start-up for a command's checks: the same two documents, the slowdown in describe's
    # only (openapi is built without it), and a bad slowdown refused as describe refuses it.
    env = {"PAIRBENCH_PAIRS": str(FIXTURE_PAIRS), "PAIRBENCH_SLOWDOWN": "fixture_rows/join=20%"}
    alone = {name: _targets(name, **env) for name in ("describe", "openapi", "documents")}
    for result in alone.values():
        assert result.returncode == 0, result.stderr
    both = json.loads(alone["documents"].stdout)
    assert set(both) == {"describe", "openapi"}
    assert both["describe"] == json.loads(alone["describe"].stdout)
    assert both["describe"]["slowdown"] == {"fixture_rows/join": 0.2}
    assert both["openapi"] == json.loads(alone["openapi"].stdout)
    refused = _targets("documents", **{**env, "PAIRBENCH_SLOWDOWN": "fixture_rows/nope=20%"})
    assert refused.returncode == 2
    assert "fixture_rows/nope" in _one_error_line(refused)
    assert refused.stdout == ""
