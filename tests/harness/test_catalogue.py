"""The harness learns the pairs and seeds them through the targets' entry point, never an import;
it seeds only the pairs it runs, and sizes PostgreSQL from the pairs' declarations.

The pair these tests seed, verify and resolve is a fixture pair (tests/fixtures/pairs/, loaded
through PAIRBENCH_PAIRS), so adding or removing a built-in pair never breaks them.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pairbench.errors import InfrastructureError, UsageError
from pairbench.harness import catalogue, postgres, runner, scenario, seeding, services

HARNESS = Path(__file__).resolve().parents[2] / "harness"
FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIRS_ENV = {"PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)}
PAIR = "fixture_rows"
SCENARIO = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?n={{knob}}"

[profiles.quick]
knob_values = [1, 5]
users = 1
round_seconds = 1
rounds = 1
"""


def _words(described: catalogue.Catalogue) -> tuple[re.Pattern[str], set[str]]:
    """The built-in pairs' names and tables: as plain words, and as identifiers.

    A table or a compound name is never an English word, so it must not appear at all; a
    one-word pair name may be an ordinary English word in a comment, never in code.
    """
    names = set(described.pairs)
    tables = {t for p in described.pairs.values() for t in p["tables"]}
    words = sorted(tables | {n for n in names if "_" in n})
    return re.compile(rf"\b({'|'.join(map(re.escape, words))})\b"), names | tables


def test_harness_never_imports_the_targets_nor_names_a_pair() -> None:
    # The harness holds no pair's name nor table: everything it knows comes from describe.
    words, identifiers = _words(catalogue.describe())
    for path in sorted(HARNESS.glob("*.py")):
        text = path.read_text()
        assert "pairbench.targets import" not in text and "from pairbench.targets" not in text
        assert "import pairbench.targets" not in text, path
        found = words.search(text)
        assert found is None, f"{path.name}: {found.group(0) if found else ''}"
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        named = {t.string for t in tokens if t.type == tokenize.NAME} & identifiers
        assert not named, f"{path.name}: {sorted(named)}"


@pytest.fixture
def fixture_pairs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> catalogue.Catalogue:
    """The fixture pairs for this process and its subprocesses, with a scenario for PAIR."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(SCENARIO)
    monkeypatch.setenv("PAIRBENCH_PAIRS", PAIRS_ENV["PAIRBENCH_PAIRS"])
    monkeypatch.setenv("PAIRBENCH_SCENARIOS", str(scenarios))
    return catalogue.describe()


def test_describe_runs_the_entry_point() -> None:
    described = catalogue.describe({**os.environ, **PAIRS_ENV})
    assert PAIR in described.pairs and "queries" in described.counters
    assert described.counters["peak_rss"]["kind"] == "peak"
    assert described.max_connections([PAIR]) is not None
    assert PAIR not in catalogue.describe().pairs  # only through PAIRBENCH_PAIRS


def test_describe_and_openapi_are_the_documents_asked_apart() -> None:
    described, document = catalogue.describe_and_openapi({**os.environ, **PAIRS_ENV})
    # Another value of a variable the targets read: asked apart, one subprocess each.
    apart = {**os.environ, **PAIRS_ENV, "PAIRBENCH_TEST_ASKED_APART": "1"}
    assert catalogue.describe(apart) == described and PAIR in described.pairs
    assert catalogue.openapi(apart) == document and f"/{PAIR}/join" in document["paths"]


def test_seed_errors_are_one_line_usage_errors(
    servers: services.Endpoints, fixture_pairs: catalogue.Catalogue
) -> None:
    with pytest.raises(UsageError) as caught:
        seeding.seed(servers.pg_dsn, "no_such_profile", [PAIR])
    assert "\n" not in str(caught.value) and "no_such_profile" in str(caught.value)


def test_seed_of_an_unreachable_database_is_an_infrastructure_error(
    fixture_pairs: catalogue.Catalogue,
) -> None:
    dsn = "postgresql://nobody:x@127.0.0.1:1/nothing"
    with pytest.raises(InfrastructureError) as caught:
        seeding.seed(dsn, "test", [PAIR])
    assert "\n" not in str(caught.value)


def test_replay_refuses_changed_sizes(fixture_pairs: catalogue.Catalogue) -> None:
    described = fixture_pairs
    today = described.pairs[PAIR]["sizes"]["test"]
    seeding.check_sizes(described, "test", {PAIR: today})
    with pytest.raises(UsageError, match=rf"{PAIR}.*sizes"):
        seeding.check_sizes(described, "test", {PAIR: {**today, "parents": 1}})


def test_verify_of_one_pair_seeds_only_that_pair(
    pairbench: list[str],
    server_env: dict[str, str],
    fresh_database: Callable[[str], str],
    fixture_pairs: catalogue.Catalogue,
) -> None:
    dsn = fresh_database("pairbench_only_one")
    result = subprocess.run(
        [*pairbench, "verify", PAIR],
        env={
            **server_env,
            "PAIRBENCH_PG_DSN": dsn,
            "PAIRBENCH_PAIRS": os.environ["PAIRBENCH_PAIRS"],
            "PAIRBENCH_SCENARIOS": os.environ["PAIRBENCH_SCENARIOS"],
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{PAIR}: dataset seeded" in result.stdout + result.stderr
    mine = fixture_pairs.pairs[PAIR]["tables"]
    others = [t for n, p in fixture_pairs.pairs.items() if n != PAIR for t in p["tables"]]
    assert mine and others
    with psycopg.connect(dsn) as conn:

        def exists(table: str) -> bool:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            return bool(row and row[0])

        assert all(exists(table) for table in mine), mine
        for other in others:
            assert not exists(other), other
        seeded = conn.execute("SELECT pair FROM pairbench_dataset").fetchall()
        assert [r[0] for r in seeded] == [PAIR]


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


def test_mechanism_counters_are_validated_against_the_catalogue(
    tmp_path: Path, fixture_pairs: catalogue.Catalogue
) -> None:
    described = fixture_pairs
    path = tmp_path / f"{PAIR}.toml"
    body = f'pair = "{PAIR}"\nrequest = "/{PAIR}/{{variant}}?n={{knob}}"\n'
    load = "[profiles.quick]\nknob_values = [1]\nusers = 1\nround_seconds = 1\nrounds = 1\n"
    path.write_text(body + "[mechanism.peak_rss]\nper_row = { base = 0 }\n" + load)
    pair = catalogue.resolve(scenario.load_scenario(path), described)
    assert pair.counters["peak_rss"]["kind"] == "peak" and pair.lesson == ["queries"]
    path.write_text(body + "[mechanism.no_such_counter]\nper_row = { base = 1 }\n" + load)
    with pytest.raises(UsageError) as caught:
        catalogue.resolve(scenario.load_scenario(path), described)
    message = str(caught.value)
    assert "\n" not in message and "[mechanism.no_such_counter]" in message
    assert "queries" in message  # the known counters, from the catalogue


def test_a_replay_with_changed_sizes_is_refused_before_anything_starts(
    tmp_path: Path, fixture_pairs: catalogue.Catalogue
) -> None:
    options = runner.RunOptions(
        pairs=[PAIR],
        profile="quick",
        out=tmp_path,
        seed=1,
        verify_only=True,
        expected_sizes={PAIR: {"parents": 1, "children_per_parent": 1}},
    )
    with pytest.raises(UsageError) as caught:
        runner.execute(options)
    message = str(caught.value)
    assert PAIR in message and "'parents': 1" in message and "\n" not in message


def test_a_run_needs_the_downstream_only_for_pairs_that_declare_it() -> None:
    """`server.downstream` in the describe document: the fault tests' pair declares it."""
    downstream_pairs = Path(__file__).resolve().parents[1] / "faults" / "downstream_pairs"
    described = catalogue.describe(
        {
            **os.environ,
            "PAIRBENCH_PAIRS": os.pathsep.join([str(FIXTURE_PAIRS), str(downstream_pairs)]),
        }
    )
    assert described.pairs["fault_downstream"]["server"]["downstream"] is True
    assert described.pairs[PAIR]["server"]["downstream"] is False
    assert described.needs_downstream(["fault_downstream", PAIR])
    assert not described.needs_downstream([PAIR])
    assert not described.needs_downstream(["no_such_pair"])
    # A scenario's [downstream] table only for a pair that calls the service: refused before
    # anything starts, in one line naming the file (harness/runner.py, _downstream_tables).
    table = scenario.DownstreamTable(concurrency=2, over_limit="reject")
    calling = scenario.Scenario(
        pair="fault_downstream",
        request="/x/{variant}?n={knob}",
        downstream=table,
        profiles={},
        source="calls.toml",
    )
    runner._downstream_tables([calling], described)
    other = calling.model_copy(update={"pair": PAIR, "source": "other.toml"})
    with pytest.raises(UsageError) as caught:
        runner._downstream_tables([calling, other], described)
    assert str(caught.value) == (
        f"other.toml: [downstream]: pair {PAIR!r} does not call the downstream service"
        " (it declares no ServerNeeds(downstream=True))"
    )


def test_a_run_needs_the_job_worker_only_for_pairs_that_declare_it() -> None:
    """`server.worker` in the describe document: the fault tests' worker pair declares it."""
    worker_pairs = Path(__file__).resolve().parents[1] / "faults" / "worker_pairs"
    described = catalogue.describe(
        {**os.environ, "PAIRBENCH_PAIRS": os.pathsep.join([str(FIXTURE_PAIRS), str(worker_pairs)])}
    )
    assert described.pairs["fault_worker"]["server"]["worker"] is True
    assert described.pairs[PAIR]["server"]["worker"] is False
    assert described.worker_pairs(["fault_worker", PAIR]) == ["fault_worker"]
    assert described.worker_pairs([PAIR, "no_such_pair"]) == []


def test_a_run_starts_the_process_group_only_for_pairs_that_declare_it() -> None:
    """`server.one_process` in the describe document: the fault tests' group pair declares it,
    with the variant a single process serves alone (docs/architecture.md, "The process group")."""
    group_pairs = Path(__file__).resolve().parents[1] / "faults" / "group_pairs"
    described = catalogue.describe(
        {**os.environ, "PAIRBENCH_PAIRS": os.pathsep.join([str(FIXTURE_PAIRS), str(group_pairs)])}
    )
    assert described.pairs["fault_group"]["server"]["one_process"] == ["alone"]
    assert described.pairs[PAIR]["server"]["one_process"] == []
    assert described.group_pairs(["fault_group", PAIR]) == {"fault_group": ["alone"]}
    assert described.group_pairs([PAIR, "no_such_pair"]) == {}


def test_documents_are_kept_between_commands_until_a_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command asks the targets once; the next command (a fresh process: the in-memory answers
    cleared) reads the answer kept in the state folder, until a file the targets import changes."""
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    module = pairs / f"{PAIR}.py"
    module.write_text((FIXTURE_PAIRS / f"{PAIR}.py").read_text())
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("PAIRBENCH_STATE_DIR", str(state))
    env = {**os.environ, "PAIRBENCH_PAIRS": str(pairs)}
    asked: list[str] = []
    real = catalogue._call_targets

    def counted(command: str, *args: object) -> object:
        asked.append(command)
        return real(command, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(catalogue, "_call_targets", counted)

    def command() -> catalogue.Catalogue:
        catalogue._ANSWERS.clear()  # what a new process starts with
        described, _ = catalogue.describe_and_openapi(env)
        return described

    first = command()
    assert asked == ["documents"]
    assert len(list((state / "documents").glob("documents-*.json"))) == 1
    assert command() == first and asked == ["documents"]  # kept: no interpreter started
    title = first.pairs[PAIR]["title"]
    module.write_text(module.read_text().replace(f'"{title}"', f'"{title} (edited)"'))
    changed = command()
    assert asked == ["documents", "documents"]
    assert changed.pairs[PAIR]["title"] == title + " (edited)"


def test_a_dataset_seeded_as_planned_is_read_without_starting_seed(
    fresh_database: Callable[[str], str],
    fixture_pairs: catalogue.Catalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed subprocess runs when a dataset must be built; once it is there with the planned
    identity and every table, `seed` answers from the database alone, with the rows `seed` gave;
    a missing table sends it back to the subprocess, which rebuilds it."""
    from pairbench.targets import seeding as targets_seeding

    assert seeding.META_TABLE == targets_seeding.META_TABLE
    dsn = fresh_database("pairbench_seeded_once")
    started: list[list[str]] = []
    real = seeding._call

    def counted(argv: list[str], *args: Any) -> Any:
        if "--plan" not in argv:
            started.append(argv)
        return real(argv, *args)

    monkeypatch.setattr(seeding, "_call", counted)
    built = seeding.seed(dsn, "test", [PAIR])[PAIR]
    assert not built.skipped and len(started) == 1
    again = seeding.seed(dsn, "test", [PAIR])[PAIR]
    assert again.skipped and len(started) == 1  # no interpreter started
    assert (again.rows, again.identity) == (built.rows, built.identity)
    other = seeding.seed(dsn, "test", [PAIR], data_seed=7)[PAIR]  # another plan: built again
    assert not other.skipped and len(started) == 2
    table = fixture_pairs.pairs[PAIR]["tables"][-1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{table}"')
    rebuilt = seeding.seed(dsn, "test", [PAIR], data_seed=7)[PAIR]
    assert not rebuilt.skipped and len(started) == 3
    assert rebuilt.rows == other.rows
