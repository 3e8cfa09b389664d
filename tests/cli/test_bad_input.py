"""Every bad input: one line, the documented exit code, and nothing started.

A table of command lines, each with its exit code (2 what the user gave, 3 what the
infrastructure did) and the one line it must print. The commands run in this process (click's
runner) against a state folder of the module's own: that no server was started is checked by
its mechanism, not by timing. Every server pairbench starts leaves a file in the state folder
(the cluster's data folder, its log, the Valkey folder, a run's logs); the folder must hold no
file afterwards, and a folder named by --out must not have been left behind.

The pair named is a fixture pair (tests/fixtures/pairs/, PAIRBENCH_PAIRS) with scenarios in a
folder of the module's own, so adding or removing a built-in pair never breaks them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairbench.cli import main
from pairbench.harness import catalogue

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_rows"
MAX_PARENTS = 500  # tests/fixtures/pairs/fixture_rows.py: the endpoint's `n` maximum


def scenario(request: str, knob_values: str = "[1, 40]", extra: str = "") -> str:
    return f"""
pair = "{PAIR}"
request = "{request}"
{extra}
[profiles.quick]
knob_values = {knob_values}
users = 1
round_seconds = 1
rounds = 1
"""


SCENARIOS = {
    "good": scenario(f"/{PAIR}/{{variant}}?n={{knob}}"),
    "knob_too_big": scenario(f"/{PAIR}/{{variant}}?n={{knob}}", f"[1, {MAX_PARENTS + 1}]"),
    "literal_too_small": scenario(f"/{PAIR}/{{variant}}?n=0", "[1, 2]", 'knob_sets = "users"'),
    "no_such_path": scenario(f"/{PAIR}/{{variant}}/nothing?n={{knob}}"),
    "min_above_max": scenario(f"/{PAIR}/{{variant}}?n={{knob}}").replace(
        "rounds = 1\n", "min_rounds = 5\nmax_rounds = 3\n"
    ),
    "repeated_status": scenario(f"/{PAIR}/{{variant}}?n={{knob}}").replace(
        f'request = "/{PAIR}/{{variant}}?n={{knob}}"',
        f'[request]\npath = "/{PAIR}/{{variant}}?n={{knob}}"\nstatus = [200, 200]',
    ),
}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_run(folder: Path, pair: str) -> Path:
    """The smallest run.json the reader accepts, measuring `pair` (no trials)."""
    run = {
        "schema_version": 1,
        "run_id": folder.name,
        "status": "complete",
        "started_at": "2025-01-01T12:00:00Z",
        "finished_at": "2025-01-01T12:01:00Z",
        "profile": "quick",
        "seed": 1,
        "command": ["pairbench", "run"],
        "metadata": {},
        "pairs": {
            pair: {
                "title": pair,
                "description": "",
                "variants": [
                    {"name": "slow", "label": "slow", "role": "bad"},
                    {"name": "fast", "label": "fast", "role": "good"},
                ],
                "bad": "slow",
                "knob": {"name": "n", "label": "n", "unit": "", "values": [1], "log_scale": True},
                "load": {
                    "model": "closed",
                    "users": 1,
                    "warmup_seconds": 0.0,
                    "round_seconds": 1.0,
                    "rounds": 1,
                },
                "verification": {"passed": True, "checks": []},
                "trials": [],
            }
        },
    }
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder


@dataclass
class Place:
    """The module's folders: state, scenarios, a file, stored runs, a taken port."""

    root: Path
    state: Path
    scenarios: dict[str, Path] = field(default_factory=dict)
    taken_port: int = 0

    def fill(self, text: str) -> str:
        return (
            text.replace("{root}", str(self.root))
            .replace("{closed}", str(closed_port()))
            .replace("{taken}", str(self.taken_port))
        )


@pytest.fixture(scope="module")
def place() -> Iterator[Place]:
    root = Path(tempfile.mkdtemp(prefix="pairbench-bad-input-"))
    state = root / "state"
    state.mkdir()
    state.chmod(0o711)
    found = Place(root, state)
    for name, text in SCENARIOS.items():
        folder = root / "scenarios" / name
        folder.mkdir(parents=True)
        (folder / f"{PAIR}.toml").write_text(text)
        found.scenarios[name] = folder
    (root / "a-file").write_text("not a folder\n")
    (root / "cwd").mkdir()  # the commands' working folder: default outputs land here
    stored_run(root / "run-a", "alpha")
    stored_run(root / "run-b", "beta")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        found.taken_port = int(listener.getsockname()[1])
        yield found
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Case:
    args: (
        str  # {root}: the module's folder; {closed}: a port nothing listens on; {taken}: one in use
    )
    code: int
    line: str  # a regex the one line must match (after "pairbench: error: ")
    scenarios: str = "good"
    env: tuple[tuple[str, str], ...] = ()
    # PAIRBENCH_PG_DSN at a closed port: should a check regress, the run stops at the
    # unreachable database (exit 3, the test fails) instead of starting servers.
    guard: bool = True


CASES = {
    "negative seed": Case(
        "run --seed -1", 2, r"Invalid value for '--seed': -1 is not in the range"
    ),
    "negative capacity seed": Case("capacity --seed -5", 2, r"'--seed': -5 is not in the range"),
    "alpha above one": Case("compare {root}/run-a {root}/run-b --alpha 2", 2, r"'--alpha': 2.0"),
    "out is a file": Case(
        "run --out {root}/a-file", 2, r"--out .*/a-file: is a file, not a folder"
    ),
    "out under a file": Case(
        "run --out {root}/a-file/x", 2, r"--out .*/a-file/x: cannot create it, .*/a-file is a file"
    ),
    "out where nothing is written": Case(
        "run --out /proc/pairbench-out", 2, r"--out /proc/pairbench-out: cannot write there \("
    ),
    "runs of a gate in a file": Case(
        "gate --baseline-ref HEAD --runs {root}/a-file", 2, r"--runs .*/a-file: is a file"
    ),
    "gate out in a file": Case(
        "gate --baseline-ref HEAD --out {root}/a-file", 2, r"--out .*/a-file: is a file"
    ),
    "history out in a file": Case(
        "history {root}/run-a --out {root}/a-file", 2, r"--out .*/a-file: is a file"
    ),
    "new into a file": Case("new my_pair --into {root}/a-file", 2, r"a-file"),
    "malformed pg dsn": Case("run --pg-dsn notadsn", 2, r"--pg-dsn: not a PostgreSQL DSN"),
    "pg refused": Case(
        "run --pg-dsn postgresql://u@127.0.0.1:{closed}/db",
        3,
        r"PostgreSQL at 127\.0\.0\.1:\d+ \(from --pg-dsn\) refused the connection",
    ),
    "pg refused, from the environment": Case(
        "verify",
        3,
        r"PostgreSQL at 127\.0\.0\.1:\d+ \(from PAIRBENCH_PG_DSN\) refused the connection",
        env=(("PAIRBENCH_PG_DSN", "postgresql://u@127.0.0.1:{closed}/db"),),
    ),
    "pg name does not resolve": Case(
        "run --pg-dsn postgresql://u@nohost.invalid:5432/db",
        2,
        r"PostgreSQL at nohost\.invalid:5432 \(from --pg-dsn\): name 'nohost\.invalid' does not",
    ),
    "malformed redis url": Case(
        "run --redis-url http://x", 2, r"--redis-url: http://x is not a Redis URL"
    ),
    "redis refused": Case(
        "capacity --redis-url redis://127.0.0.1:{closed}/0",
        3,
        r"Redis at 127\.0\.0\.1:\d+ \(from --redis-url\) refused the connection",
        guard=False,
    ),
    "services up with a malformed dsn": Case(
        "services up --pg-dsn notadsn", 2, r"--pg-dsn: not a PostgreSQL DSN"
    ),
    "knob value above the endpoint's maximum": Case(
        f"run {PAIR}",
        2,
        rf"{PAIR}\.toml \[profiles\.quick\]: knob value {MAX_PARENTS + 1} gives n={MAX_PARENTS + 1},"
        rf" above the endpoint's maximum {MAX_PARENTS} for GET /{PAIR}/\{{variant\}}",
        scenarios="knob_too_big",
    ),
    "literal value below the endpoint's minimum": Case(
        f"verify {PAIR}",
        2,
        rf"{PAIR}\.toml: n=0 in the request is below the endpoint's minimum 1 for GET /{PAIR}/",
        scenarios="literal_too_small",
    ),
    "request to no endpoint": Case(
        f"run {PAIR}",
        2,
        rf"{PAIR}\.toml \[profiles\.quick\]: GET /{PAIR}/\{{variant\}}/nothing: the targets serve no",
        scenarios="no_such_path",
    ),
    "rounds of zero": Case(f"run {PAIR} --rounds 0", 2, r"'--rounds': 0 is not in the range"),
    "rounds with a replay": Case(
        "run --from {root}/run-a --rounds 2", 2, r"--from replays a stored run: give no PAIRS"
    ),
    "adaptive rounds the wrong way round": Case(
        f"run {PAIR}",
        2,
        rf"{PAIR}\.toml: profiles\.quick: .*min_rounds 5 > max_rounds 3",
        scenarios="min_above_max",
    ),
    "a status listed twice": Case(
        f"run {PAIR}",
        2,
        rf"{PAIR}\.toml: request\.steps\.0: status lists \[200, 200\] with a repeated status",
        scenarios="repeated_status",
    ),
    "scenario folder missing": Case(
        f"run {PAIR}",
        2,
        r"PAIRBENCH_SCENARIOS: .*/nowhere does not exist",
        env=(("PAIRBENCH_SCENARIOS", "{root}/nowhere"),),
    ),
    "runs sharing no pair": Case(
        "compare {root}/run-a {root}/run-b",
        2,
        r"run-a and .*run-b share no pair: .*run-a has alpha; .*run-b has beta",
    ),
    "gate of stored runs sharing no pair": Case(
        "gate --baseline {root}/run-a {root}/run-b", 2, r"share no pair"
    ),
    "report of a missing run": Case("report {root}/nothing", 2, r"nothing"),
    "report of a file": Case("report {root}/a-file", 2, r"a-file"),
    "replay of a missing run": Case("run --from {root}/nothing", 2, r"nothing"),
    "serve on a taken port": Case(
        "serve --port {taken}", 2, r"--port \d+: port \d+ is in use on 127\.0\.0\.1"
    ),
    "master port taken": Case(
        "run --remote-workers 1 --master-port {taken}",
        2,
        r"--master-port \d+: port \d+ is in use on 127\.0\.0\.1",
    ),
    "master address does not resolve": Case(
        "run --remote-workers 1 --master-port {closed} --master-bind nohost.invalid",
        2,
        r"--master-bind nohost\.invalid: name does not resolve",
    ),
    "serve an unknown profile": Case(
        "serve --profile huge --port {closed}", 2, r"--profile huge: unknown profile"
    ),
    "a target URL with a path": Case(
        "run --target http://127.0.0.1:{closed}/api",
        2,
        r"--target http://127\.0\.0\.1:\d+/api: expected a base URL such as http://HOST:8000",
    ),
    "a scenario file that does not exist": Case(
        "run {root}/missing.toml", 2, r".*/missing\.toml: no such scenario file"
    ),
    "unknown pin mode": Case("run --pin sometimes", 2, r"'--pin': 'sometimes' is not one of"),
    "unknown metrics": Case("gate --metrics bogus x", 2, r"'--metrics': 'bogus' is not one of"),
    "a ref that is not a commit": Case(
        "gate --baseline-ref not-a-commit-xyz",
        2,
        r"--baseline-ref 'not-a-commit-xyz': not a commit",
    ),
}


def files_under(folder: Path) -> list[Path]:
    """Every file, but the targets' documents kept between commands (read before anything
    starts: harness/catalogue.py, `stored`)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if not p.is_dir() and p.parent != folder / catalogue.STORE_FOLDER
    )


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    monkeypatch.setenv("PAIRBENCH_STATE_DIR", str(place.state))
    monkeypatch.setenv("PAIRBENCH_PAIRS", str(FIXTURE_PAIRS))
    monkeypatch.setenv("PAIRBENCH_SCENARIOS", str(place.scenarios[case.scenarios]))
    if case.guard:
        monkeypatch.setenv("PAIRBENCH_PG_DSN", place.fill("postgresql://u@127.0.0.1:{closed}/db"))
    else:
        monkeypatch.delenv("PAIRBENCH_PG_DSN", raising=False)
    monkeypatch.chdir(place.root / "cwd")
    for key, value in case.env:
        monkeypatch.setenv(key, place.fill(value))
    before = {p.name for p in place.root.iterdir()}
    args = place.fill(case.args).split()

    result = CliRunner().invoke(main, args)

    lines = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, (args, result.stderr, result.stdout)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pairbench: error: "), lines[0]
    assert re.search(case.line, lines[0]), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    # Nothing started: no server left a data folder, log or pidfile, no run wrote a folder.
    assert files_under(place.state) == []
    assert {p.name for p in place.root.iterdir()} == before
    assert not Path("/proc/pairbench-out").exists()


def test_a_crash_report_lands_in_the_state_folder(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pairbench.cli.main import _save_traceback

    monkeypatch.setenv("PAIRBENCH_STATE_DIR", str(place.state))
    try:
        raise RuntimeError("an unforeseen failure")
    except RuntimeError:
        written = Path(_save_traceback())
    try:
        assert written.parent == place.state / "crashes"
        assert "RuntimeError: an unforeseen failure" in written.read_text()
    finally:
        shutil.rmtree(place.state / "crashes")
