"""The process group (harness/group.py): its members start on one shared socket and a private
port each, every one of them ends with the group and its ports are free again, and a variant
named to run alone is sent to member 0's private port.

The members serve no pair (a name nothing registers): what is tested is the group itself, on
the session's real servers, with real uvicorn processes.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import psutil
import pytest

from pairbench.errors import InfrastructureError
from pairbench.harness import catalogue, group, procs, rounds, scenario, services
from pairbench.harness.server import TargetServer

NO_PAIR = "nothing-registered"
MEMBERS = 2
SCENARIO = """
pair = "p"
request = "/p/{variant}?k={knob}"

[variants]
bad = "bad"
good = "good"

[knob]
name = "k"

[profiles.quick]
knob_values = [3]
users = 1
round_seconds = 1
rounds = 1
"""


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((group.HOST, port))
        except OSError:
            return False
    return True


def test_members_share_a_socket_and_all_end_with_the_group(
    servers: services.Endpoints, tmp_path: Path
) -> None:
    running = group.start(
        [NO_PAIR], servers.pg_dsn, servers.redis_url, tmp_path, "t", count=MEMBERS
    )
    try:
        described = running.describe()
        assert described["processes"] == MEMBERS
        assert [m["pid"] for m in described["members"]] == [m.pid for m in running.members]
        ports = [running.shared.getsockname()[1], *(m.port for m in running.members)]
        assert len(set(ports)) == MEMBERS + 1
        for member in running.members:
            assert procs.pid_alive(member.pid)
            assert httpx.get(member.url + "/healthz", timeout=10).status_code == 200
        assert httpx.get(running.url + "/healthz", timeout=10).status_code == 200
        # Serving no pair: the members' app has none of the others' routes.
        assert httpx.get(running.url + "/pairs", timeout=10).json()["pairs"] == []
    finally:
        running.stop()
    for member in running.members:
        assert not procs.pid_alive(member.pid)
        assert member.popen.returncode is not None
    assert all(_free(p) for p in ports)


def test_a_member_that_cannot_start_stops_the_others(
    servers: services.Endpoints, tmp_path: Path
) -> None:
    with pytest.raises(InfrastructureError, match="process group member 0"):
        # An unreachable PostgreSQL: the app's lifespan fails, so every member exits.
        group.start(
            [NO_PAIR],
            "postgresql://nobody@127.0.0.1:1/none",
            servers.redis_url,
            tmp_path,
            "t",
            count=MEMBERS,
        )
    left = [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if group.MEMBER_MODULE in " ".join(p.cmdline())
    ]
    assert left == []  # the member that started is stopped with the one that failed
    assert sorted(p.name for p in tmp_path.glob("t-group-*.log")) == [
        f"t-group-{i}.log" for i in range(MEMBERS)
    ]


def test_variants_named_alone_go_to_member_0(servers: services.Endpoints, tmp_path: Path) -> None:
    running = group.start(
        [NO_PAIR], servers.pg_dsn, servers.redis_url, tmp_path, "t", count=MEMBERS
    )
    try:
        target = running.target(["bad"])
        assert target.url == running.url
        assert target.variant_urls == {"bad": running.members[0].url}
        assert target.pid == running.members[0].pid
        side = _side(target, tmp_path)
        paths = rounds._paths(side, 3, absolute=True)
        assert paths["bad"][0]["path"] == f"{running.members[0].url}/p/bad?k=3"
        assert paths["good"][0]["path"] == f"{running.url}/p/good?k=3"
    finally:
        running.stop()


def _side(target: TargetServer, folder: Path) -> rounds.Side:
    """A measurement side for a two-variant pair of a service's own (/p/{variant}?k={knob})."""
    path = folder / "p.toml"
    path.write_text(SCENARIO)
    info = catalogue.resolve(scenario.load_scenario(path), catalogue.Catalogue())
    return rounds.Side("new", target, httpx.Client(base_url=target.url), info, {})
