"""One process vs one per core: every member of the process group sends the same bodies, /metrics
sums the group, and one_process's load stays on one process while per_core's reaches another.

The group is the harness's own (harness/group.py), on the session's real servers, serving this
pair alone: real uvicorn processes on a real shared socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pairbench.harness import group, metricsclient, services
from pairbench.targets.pairs.uvicorn_workers import MAX_MS, PID_HEADER, pair

from .counting import COUNTERS

MEMBERS = 2  # on any machine: the test needs siblings, whatever the core count
KNOB_MS = 5
# A request that holds its member's event loop for this long: the next connection, opened
# well inside it, cannot be accepted by that member.
BUSY_MS = MAX_MS
INSIDE_S = BUSY_MS / 1000 / 4


@pytest.fixture(scope="module")
def members(
    servers: services.Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[group.RunningGroup]:
    """A group of two serving this pair alone, as a run starts it for the pair's turn."""
    logs = Path(tmp_path_factory.mktemp("group"))
    running = group.start(
        [pair.name], servers.pg_dsn, servers.redis_url, logs, "test", count=MEMBERS
    )
    try:
        yield running
    finally:
        running.stop()


def _fresh_get(url: str) -> httpx.Response:
    """One request on a connection of its own (no keep-alive reuse: a new accept)."""
    with httpx.Client(timeout=30) as client:
        return client.get(url)


def test_variants_and_what_the_server_needs() -> None:
    assert list(pair.variants) == ["one_process", "per_core"]
    assert [v.role for v in pair.variants.values()] == ["bad", "good"]
    assert pair.server.one_process == ("one_process",)
    assert pair.counters[0] == "cores_busy"


def test_every_member_sends_the_same_body(members: group.RunningGroup) -> None:
    bodies, pids = [], set()
    for member in members.members:
        for variant in pair.variants:
            reply = _fresh_get(f"{member.url}/{pair.name}/{variant}?ms={KNOB_MS}")
            assert reply.status_code == 200
            bodies.append(reply.json())
            pids.add(int(reply.headers[PID_HEADER]))
    assert all(b == bodies[0] for b in bodies)  # one calibration for the whole group
    assert bodies[0]["ms"] == KNOB_MS and bodies[0]["iterations"] > 0
    assert pids == {m.pid for m in members.members}  # each private port is its own process


def test_inputs_are_bounded(members: group.RunningGroup) -> None:
    for bad in (0, -1, MAX_MS + 1, "x"):
        assert _fresh_get(f"{members.url}/{pair.name}/per_core?ms={bad}").status_code == 422


def test_metrics_sum_the_group(members: group.RunningGroup) -> None:
    """One request per member, each on its private port: the summed counter (read on the
    shared port) grows by the member count, each member's own by one."""
    with httpx.Client(base_url=members.url, timeout=30) as shared:
        local_before = [_fresh_get(f"{m.url}/metrics?local=1").text for m in members.members]
        before = shared.get("/metrics").text
        for member in members.members:
            assert _fresh_get(f"{member.url}/{pair.name}/per_core?ms=1").status_code == 200
        after = shared.get("/metrics").text
        local_after = [_fresh_get(f"{m.url}/metrics?local=1").text for m in members.members]
        # Any member's /metrics answers for the group: a private port's too.
        private = _fresh_get(f"{members.members[1].url}/metrics").text
    grown = metricsclient.delta(before, after, COUNTERS)
    assert grown["group_requests"] == MEMBERS
    for was, now in zip(local_before, local_after, strict=True):
        assert metricsclient.delta(was, now, COUNTERS)["group_requests"] == 1
    assert metricsclient.delta(before, private, COUNTERS)["group_requests"] == MEMBERS
    # The wall clock is the same in every member: the largest, never the sum.
    assert 0 <= grown["wall_seconds"] < 60


async def _busy_then_next(first: str, second: str) -> tuple[int, int]:
    """A BUSY_MS request at `first`, then, while it runs, a short one at `second`, each on a
    connection of its own: the pids that served them."""
    async with httpx.AsyncClient(timeout=30) as a, httpx.AsyncClient(timeout=30) as b:
        busy = asyncio.create_task(a.get(f"{first}/{pair.name}/per_core?ms={BUSY_MS}"))
        await asyncio.sleep(INSIDE_S)
        short = await b.get(f"{second}/{pair.name}/per_core?ms=1")
        long = await busy
    assert long.status_code == short.status_code == 200
    return int(long.headers[PID_HEADER]), int(short.headers[PID_HEADER])


def test_one_process_serves_everything_alone(members: group.RunningGroup) -> None:
    """Member 0's private port (one_process's URL): its busy loop keeps the next request
    waiting, and no sibling takes it."""
    first = members.members[0]
    target = members.target([*pair.server.one_process])
    assert target.variant_urls == {"one_process": first.url}
    assert asyncio.run(_busy_then_next(first.url, first.url)) == (first.pid, first.pid)


def test_per_core_hands_the_next_connection_to_an_idle_member(
    members: group.RunningGroup,
) -> None:
    """The shared port: while one member's loop is busy it accepts nothing, so the kernel's
    next connection goes to a sibling."""
    busy, short = asyncio.run(_busy_then_next(members.url, members.url))
    assert {busy, short} <= {m.pid for m in members.members}
    assert busy != short


def test_a_plain_server_serves_both_variants_in_its_one_process(
    target: httpx.Client, members: group.RunningGroup
) -> None:
    """The session's one-process target (like `pairbench serve`) answers both variants itself,
    with the same body as the group's members: one calibration per deployment, in Redis."""
    replies = [target.get(f"/{pair.name}/{v}?ms={KNOB_MS}") for v in pair.variants]
    assert {int(r.headers[PID_HEADER]) for r in replies} == {_pid(target)}
    in_group = _fresh_get(f"{members.url}/{pair.name}/per_core?ms={KNOB_MS}").json()
    assert all(r.json() == in_group for r in replies)


def _pid(client: httpx.Client) -> int:
    return int(client.get(f"/{pair.name}/one_process?ms=1").headers[PID_HEADER])
