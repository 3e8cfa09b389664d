"""The link emulator on real sockets: its bandwidth, its added round trip, its process.

The round-trip proof runs `SELECT 1` against the embedded PostgreSQL through the proxy at 0 ms
and at 1 ms, alternating in blocks so drift on a busy machine hits both, and compares medians:
the proxy's own cost is in both and cancels (docs/architecture.md, "The link emulator").
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import psutil
import psycopg
import pytest
from hdrh.histogram import HdrHistogram
from psycopg import conninfo

from pairbench import runmodel
from pairbench.errors import InfrastructureError, UsageError
from pairbench.harness import link, procs, scenario, server, services

RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"

MEGABYTE = 1_000_000
BLOCKS = 8  # alternations of 0 ms and 1 ms
SAMPLES = 150  # SELECT 1s per block


class Sink:
    """A TCP server that reads everything, answers `ping` with `pong`, and `done` at EOF."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def close(self) -> None:
        """Stop accepting and wait for every thread: later tests count this process's threads
        (the figure workers draw in one process when others run)."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                if data == b"ping":
                    conn.sendall(b"pong")
            conn.sendall(b"done")


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "link.log"


def _send_megabyte(port: int) -> float:
    """Seconds from the first byte sent to the receiver's reply after the last one."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.perf_counter()
        conn.sendall(b"x" * MEGABYTE)
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(16) == b"done"
        return time.perf_counter() - started


def test_one_megabyte_at_10_mbit_takes_0_8_s(sink: Sink, log: Path) -> None:
    proxy = link.start("client", ("127.0.0.1", sink.port), link.Shape(10.0, 0.0), log)
    try:
        seconds = _send_megabyte(proxy.port)
        stats = proxy.stats()
    finally:
        proxy.stop()
    assert 0.72 <= seconds <= 0.88, f"1 MB at 10 Mbit/s took {seconds:.3f} s, not 0.8 s +-10%"
    assert stats["bytes_up"] == MEGABYTE
    assert stats["cpu_s"] > 0


def test_the_delay_does_not_limit_throughput(sink: Sink, log: Path) -> None:
    """A delay line, not stop-and-wait: 100 ms of round trip adds 50 ms (one way) to 0.8 s."""
    proxy = link.start("client", ("127.0.0.1", sink.port), link.Shape(10.0, 100.0), log)
    try:
        seconds = _send_megabyte(proxy.port)
    finally:
        proxy.stop()
    # The reply crosses back too: 0.8 s + 50 ms there + 50 ms back.
    assert 0.85 <= seconds <= 0.99, f"took {seconds:.3f} s"


def test_connections_share_the_link_bandwidth(sink: Sink, log: Path) -> None:
    proxy = link.start("client", ("127.0.0.1", sink.port), link.Shape(20.0, 0.0), log)
    took: list[float] = []
    try:
        threads = [
            threading.Thread(target=lambda: took.append(_send_megabyte(proxy.port)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proxy.stop()
    # 2 MB through one 20 Mbit/s link: 0.8 s for the last to finish, not 0.4 s each.
    assert 0.72 <= max(took) <= 0.88, took


def _select_one_ms(conn: psycopg.Connection[tuple[int]], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        out.append((time.perf_counter() - started) * 1000)
    return out


def test_one_ms_round_trip_adds_one_ms_to_select_1(servers: services.Endpoints, log: Path) -> None:
    params = conninfo.conninfo_to_dict(servers.pg_dsn)
    upstream = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    proxy = link.start("db", upstream, link.Shape(None, 0.0), log)
    medians: dict[float, list[float]] = {0.0: [], 1.0: []}
    try:
        dsn = conninfo.make_conninfo(servers.pg_dsn, host="127.0.0.1", port=proxy.port)
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
            _select_one_ms(conn, 50)  # warm the connection and the plan
            for block in range(BLOCKS):
                # ABBA order: a drift within a pair of blocks hits both round trips alike.
                order = (0.0, 1.0) if block % 2 == 0 else (1.0, 0.0)
                for rtt in order:
                    proxy.set(link.Shape(None, rtt))
                    medians[rtt].append(statistics.median(_select_one_ms(conn, SAMPLES)))
    finally:
        proxy.stop()
    added = statistics.median(medians[1.0]) - statistics.median(medians[0.0])
    spread = [round(b - a, 3) for a, b in zip(medians[0.0], medians[1.0], strict=True)]
    print(f"1 ms RTT added {added:.3f} ms to SELECT 1 (per block: {spread})")  # pytest -rP
    assert abs(added - 1.0) <= 0.1, f"1 ms RTT added {added:.3f} ms (per block: {spread})"


def test_stop_ends_the_process_and_a_dead_proxy_is_named(sink: Sink, log: Path) -> None:
    proxy = link.start("db", ("127.0.0.1", sink.port), link.Shape(None, 0.5), log)
    try:
        with procs.watched("the db link", proxy.popen, proxy.log):
            procs.stop_pid(proxy.pid, popen=proxy.popen)  # as if it had crashed
            dead = procs.dead_watched("a trial")
        assert dead is not None and dead.startswith(f"the db link (pid {proxy.pid}) died")
        assert str(log) in dead
        with pytest.raises(InfrastructureError, match=f"the db link \\(pid {proxy.pid}\\)"):
            proxy.set(link.Shape(None, 1.0))
    finally:
        proxy.stop()
    assert not procs.pid_alive(proxy.pid)


def test_changes_apply_to_open_connections(sink: Sink, log: Path) -> None:
    proxy = link.start("db", ("127.0.0.1", sink.port), link.Shape(None, 0.0), log)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def ping_ms() -> float:
                started = time.perf_counter()
                conn.sendall(b"ping")
                assert conn.recv(16) == b"pong"
                return (time.perf_counter() - started) * 1000

            before = statistics.median(ping_ms() for _ in range(20))
            proxy.set(link.Shape(None, 20.0))
            after = statistics.median(ping_ms() for _ in range(5))
    finally:
        proxy.stop()
    assert before < 5 and 20 <= after < 30, (before, after)


@pytest.mark.parametrize(
    ("mbit", "rtt_ms", "message"),
    [(0.0, 0.0, "link mbit 0: must be above 0"), (None, -1.0, "link rtt_ms -1: must be 0")],
)
def test_bad_shapes_are_refused_in_one_line(
    mbit: float | None, rtt_ms: float, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        link.Shape(mbit, rtt_ms)


def test_describe_names_rate_and_round_trip() -> None:
    assert link.Shape(10.0, 1.0).describe() == "10 Mbit/s, 1 ms RTT"
    assert link.Shape(None, 0.5).describe() == "unlimited, 0.5 ms RTT"


# ---------------------------------------------------------------------------------------------
# Scenarios that declare links, and a real run across one

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
RTT_SCENARIO = """
pair = "fixture_rows"
name = "fixture_rows_rtt"
request = "/fixture_rows/{variant}?n=10"
knob_sets = "db_rtt_ms"

[knob]
name = "db_rtt_ms"
label = "round trip to the database"
unit = "ms"
log_scale = false

[mechanism.queries]
per_row = { base = 11 }
join = { base = 1 }
batched = { base = 2 }

[profiles.quick]
knob_values = [0, 2]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.4
rounds = 2
"""


def _scenario(tmp_path: Path, text: str) -> scenario.Scenario:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return scenario.load_scenario(path)


def test_a_round_trip_knob_implies_the_db_link(tmp_path: Path) -> None:
    spec = _scenario(tmp_path, RTT_SCENARIO)
    chosen = spec.link_for(spec.load("quick"))
    assert spec.key == "fixture_rows_rtt"
    assert chosen is not None and chosen.client is None
    assert chosen.db is not None and chosen.db.mbit is None and chosen.db.rtt_ms == 0


def test_a_profile_link_replaces_the_scenarios(tmp_path: Path) -> None:
    text = RTT_SCENARIO.replace('knob_sets = "db_rtt_ms"', 'knob_sets = "users"') + (
        "\n[link.client]\nmbit = 10\n\n[profiles.quick.link.client]\nmbit = 1\nrtt_ms = 40\n"
    )
    spec = _scenario(tmp_path, text)
    chosen = spec.link_for(spec.load("quick"))
    assert chosen is not None and chosen.db is None
    assert chosen.client is not None and (chosen.client.mbit, chosen.client.rtt_ms) == (1, 40)


def test_a_bad_link_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"s\.toml: link\.db\.rtt_ms: Input should be greater"):
        _scenario(tmp_path, RTT_SCENARIO + "\n[link.db]\nrtt_ms = -1\n")


def test_a_bandwidth_knob_implies_the_client_link(tmp_path: Path) -> None:
    text = RTT_SCENARIO.replace('knob_sets = "db_rtt_ms"', 'knob_sets = "client_mbit"')
    spec = _scenario(tmp_path, text.replace("knob_values = [0, 2]", "knob_values = [10, 100000]"))
    chosen = spec.link_for(spec.load("quick"))
    assert chosen is not None and chosen.db is None
    assert chosen.client is not None and chosen.client.mbit is None and chosen.client.rtt_ms == 0


@pytest.mark.parametrize("value", ["0", "200000"])
def test_a_bandwidth_knob_value_out_of_range_is_one_line(tmp_path: Path, value: str) -> None:
    text = RTT_SCENARIO.replace('knob_sets = "db_rtt_ms"', 'knob_sets = "client_mbit"')
    with pytest.raises(UsageError, match=rf"profiles\.quick\.knob_values: {value} Mbit/s"):
        _scenario(tmp_path, text.replace("knob_values = [0, 2]", f"knob_values = [{value}]"))


def test_the_bandwidth_knob_sets_the_client_link(sink: Sink, log: Path) -> None:
    """10 Mbit/s moves 1 MB in 0.8 s; the knob's largest value is a link with no limit."""
    proxy = link.start("client", ("127.0.0.1", sink.port), link.Shape(None, 0.0), log)
    linked = link.Linked(cast(server.TargetServer, None), {"client": proxy}, mbit_from_knob=True)
    try:
        at_knob = linked.at_knob()
        assert at_knob is not None
        at_knob(10)
        limited = _send_megabyte(proxy.port)
        at_knob(link.MAX_MBIT)
        unlimited = _send_megabyte(proxy.port)
    finally:
        proxy.stop()
    assert 0.72 <= limited <= 0.88, f"1 MB at 10 Mbit/s took {limited:.3f} s"
    assert unlimited < 0.2, f"1 MB unlimited took {unlimited:.3f} s"
    assert proxy.shape.mbit is None
    record = linked.record()
    assert record["client"]["mbit_from_knob"] is True and record["db"] is None
    assert record["description"] == "client link bandwidth = the knob (100000: unlimited), 0 ms RTT"


def _link_processes(since: float) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "create_time"]):
        cmdline = process.info["cmdline"] or []
        if "pairbench.harness.link" in cmdline and process.info["create_time"] >= since:
            found.append(process)
    return found


def test_a_run_across_the_db_link_grows_with_the_round_trip(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "fixture_rows_rtt.toml").write_text(RTT_SCENARIO)
    env = {**server_env, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS), "PAIRBENCH_SCENARIOS": str(folder)}
    started = time.time() - 1
    result = subprocess.run(
        [*pairbench, "run", "fixture_rows_rtt", "--out", str(tmp_path / "out"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "fixture_rows_rtt: across db link unlimited, RTT = the knob" in result.stderr
    assert _link_processes(started) == []  # both proxies ended with the run
    (run_dir,) = (tmp_path / "out").iterdir()
    stored = json.loads((run_dir / "run.json").read_text())
    record = stored["pairs"]["fixture_rows_rtt"]
    assert record["link"]["db"]["rtt_from_knob"] is True and record["link"]["client"] is None
    assert record["link"]["description"] == "db link unlimited, RTT = the knob"
    postgres = record["link"]["proxies"]["postgres"]
    assert postgres["connections"] >= 1 and postgres["bytes_down"] > 0 and postgres["cpu_s"] > 0
    assert postgres["late_us_p50"] is not None  # chunks crossed the 2 ms line

    def p50_ms(variant: str, knob: float) -> float:
        values = []
        for trial in record["trials"]:
            if trial["variant"] == variant and trial["knob"] == knob:
                values.append(HdrHistogram.decode(trial["histogram"]).get_value_at_percentile(50))
        return statistics.median(values) / 1000

    # 11 statements a request cross 2 ms each; the join's one crosses it once.
    per_row = p50_ms("per_row", 2) - p50_ms("per_row", 0)
    join = p50_ms("join", 2) - p50_ms("join", 0)
    assert per_row > 15 and join < per_row / 3, (per_row, join)
    assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text(encoding="utf-8")) == []


CLIENT_SCENARIO = """
pair = "fixture_rows"
name = "fixture_rows_client"
request = "/fixture_rows/{variant}?n={knob}"

[link.client]
mbit = 10
rtt_ms = 4

[profiles.quick]
knob_values = [1]
users = 1
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.4
rounds = 2
"""


def test_a_run_across_the_client_link_pays_its_round_trip(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "fixture_rows_client.toml").write_text(CLIENT_SCENARIO)
    env = {**server_env, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS), "PAIRBENCH_SCENARIOS": str(folder)}
    result = subprocess.run(
        [*pairbench, "run", "fixture_rows_client", "--out", str(tmp_path / "out"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    record = json.loads((run_dir / "run.json").read_text())["pairs"]["fixture_rows_client"]
    assert record["link"]["description"] == "client link 10 Mbit/s, 4 ms RTT"
    assert record["link"]["db"] is None and "postgres" not in record["link"]["proxies"]
    assert record["link"]["proxies"]["client"]["bytes_down"] > 0
    for trial in record["trials"]:
        p50_ms = HdrHistogram.decode(trial["histogram"]).get_value_at_percentile(50) / 1000
        assert 4.0 <= p50_ms < 12.0, (trial["variant"], p50_ms)  # every request crossed 4 ms


BANDWIDTH_SCENARIO = """
pair = "fixture_rows"
name = "fixture_rows_bandwidth"
request = "/fixture_rows/{variant}?n=100"
knob_sets = "client_mbit"

[knob]
name = "client_mbit"
label = "client link bandwidth"
unit = "Mbit/s"

[profiles.quick]
knob_values = [1, 100000]
users = 1
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.5
rounds = 2
"""


def test_a_run_across_the_client_link_pays_the_knobs_bandwidth(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "fixture_rows_bandwidth.toml").write_text(BANDWIDTH_SCENARIO)
    env = {**server_env, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS), "PAIRBENCH_SCENARIOS": str(folder)}
    result = subprocess.run(
        [*pairbench, "run", "fixture_rows_bandwidth", "--no-progress", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = (d for d in tmp_path.iterdir() if d.name != "scenarios")
    stored = json.loads((run_dir / "run.json").read_text())
    record = stored["pairs"]["fixture_rows_bandwidth"]
    assert record["link"]["client"]["mbit_from_knob"] is True
    assert record["link"]["description"] == (
        "client link bandwidth = the knob (100000: unlimited), 0 ms RTT"
    )
    assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text(encoding="utf-8")) == []

    def p50_ms(variant: str, knob: float) -> float:
        values = []
        for trial in record["trials"]:
            if trial["variant"] == variant and trial["knob"] == knob:
                values.append(HdrHistogram.decode(trial["histogram"]).get_value_at_percentile(50))
        return statistics.median(values) / 1000

    # A page of 100 parents is some KB: tens of milliseconds at 1 Mbit/s, a few unlimited.
    for variant in ("per_row", "join", "batched"):
        slow, unlimited = p50_ms(variant, 1), p50_ms(variant, 100_000)
        assert slow > 10 and slow > 3 * unlimited, (variant, slow, unlimited)
