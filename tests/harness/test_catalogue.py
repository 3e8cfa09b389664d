"""The harness learns the pairs and seeds them through the targets' entry point, never an import;
it seeds only the pairs it runs, and sizes PostgreSQL from the pairs' declarations."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pairbench.errors import InfrastructureError, UsageError
from pairbench.harness import catalogue, postgres, runner, scenario, seeding, services

HARNESS = Path(__file__).resolve().parents[2] / "harness"
# The harness holds no pair's name nor table: everything it knows comes from describe.
PAIR_WORDS = re.compile(
    r"\b(n_plus_one|pagination|cache|cpu|authors|books|orders|customers|feed_items)\b"
)


def test_harness_never_imports_the_targets_nor_names_a_pair() -> None:
    for path in sorted(HARNESS.glob("*.py")):
        text = path.read_text()
        assert "pairbench.targets import" not in text and "from pairbench.targets" not in text
        assert "import pairbench.targets" not in text, path
        found = PAIR_WORDS.search(text)
        assert found is None, f"{path.name}: {found.group(0) if found else ''}"


def test_describe_runs_the_entry_point() -> None:
    described = catalogue.describe()
    assert "n_plus_one" in described.pairs and "queries" in described.counters
    assert described.counters["peak_rss"]["kind"] == "peak"
    assert described.max_connections(["n_plus_one"]) is not None


def test_seed_errors_are_one_line_usage_errors(servers: services.Endpoints) -> None:
    with pytest.raises(UsageError) as caught:
        seeding.seed(servers.pg_dsn, "no_such_profile", ["n_plus_one"])
    assert "\n" not in str(caught.value) and "no_such_profile" in str(caught.value)


def test_seed_of_an_unreachable_database_is_an_infrastructure_error() -> None:
    dsn = "postgresql://nobody:x@127.0.0.1:1/nothing"
    with pytest.raises(InfrastructureError) as caught:
        seeding.seed(dsn, "test", ["n_plus_one"])
    assert "\n" not in str(caught.value)


def test_replay_refuses_changed_sizes() -> None:
    described = catalogue.describe()
    today = described.pairs["n_plus_one"]["sizes"]["test"]
    seeding.check_sizes(described, "test", {"n_plus_one": today})
    with pytest.raises(UsageError, match=r"n_plus_one.*sizes"):
        seeding.check_sizes(described, "test", {"n_plus_one": {**today, "authors": 1}})


def test_verify_of_one_pair_seeds_only_that_pair(
    pairbench: list[str],
    server_env: dict[str, str],
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("pairbench_only_one")
    result = subprocess.run(
        [*pairbench, "verify", "n_plus_one"],
        env={**server_env, "PAIRBENCH_PG_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "n_plus_one: dataset seeded" in result.stdout + result.stderr
    with psycopg.connect(dsn) as conn:

        def exists(table: str) -> bool:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            return bool(row and row[0])

        assert exists("authors") and exists("books")
        for other in ("feed_items", "customers", "orders", "pool_authors", "pool_books"):
            assert not exists(other), other
        seeded = conn.execute("SELECT pair FROM pairbench_dataset").fetchall()
        assert [r[0] for r in seeded] == ["n_plus_one"]


def test_max_connections_is_derived_from_the_declarations(servers: services.Endpoints) -> None:
    assert postgres.needed_connections(None) == postgres.MAX_CONNECTIONS_FLOOR
    declared = 400
    assert postgres.needed_connections(declared) == declared + postgres.MAX_CONNECTIONS_MARGIN
    # The session's server was started by provide() with no figure: every pair's needs.
    described = catalogue.describe()
    wanted = postgres.needed_connections(described.max_connections(list(described.pairs)))
    assert postgres.max_connections(servers.pg_dsn) == wanted
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    assert row is not None and "pg_stat_statements" in row[0]


def test_a_reused_server_with_too_few_connections_fails_in_one_line(
    servers: services.Endpoints,
) -> None:
    given = services.ServiceOptions(pg_dsn=servers.pg_dsn, redis_url=servers.redis_url)
    too_many = postgres.max_connections(servers.pg_dsn) + 1
    with pytest.raises(InfrastructureError) as caught, services.provide(given, too_many):
        pass
    message = str(caught.value)
    assert "\n" not in message and "max_connections" in message and str(too_many) in message


def test_mechanism_counters_are_validated_against_the_catalogue(tmp_path: Path) -> None:
    described = catalogue.describe()
    path = tmp_path / "n_plus_one.toml"
    body = 'pair = "n_plus_one"\nrequest = "/n_plus_one/{variant}?n={knob}"\n'
    load = "[profiles.quick]\nknob_values = [1]\nusers = 1\nround_seconds = 1\nrounds = 1\n"
    path.write_text(body + "[mechanism.peak_rss]\nlazy = { base = 0 }\n" + load)
    pair = catalogue.resolve(scenario.load_scenario(path), described)
    assert pair.counters["peak_rss"]["kind"] == "peak" and pair.lesson == ["queries"]
    path.write_text(body + "[mechanism.no_such_counter]\nlazy = { base = 1 }\n" + load)
    with pytest.raises(UsageError) as caught:
        catalogue.resolve(scenario.load_scenario(path), described)
    message = str(caught.value)
    assert "\n" not in message and "[mechanism.no_such_counter]" in message
    assert "queries" in message  # the known counters, from the catalogue


def test_a_replay_with_changed_sizes_is_refused_before_anything_starts(tmp_path: Path) -> None:
    options = runner.RunOptions(
        pairs=["n_plus_one"],
        profile="quick",
        out=tmp_path,
        seed=1,
        verify_only=True,
        expected_sizes={"n_plus_one": {"authors": 1, "books_per_author": 1}},
    )
    with pytest.raises(UsageError) as caught:
        runner.execute(options)
    message = str(caught.value)
    assert "n_plus_one" in message and "'authors': 1" in message and "\n" not in message
