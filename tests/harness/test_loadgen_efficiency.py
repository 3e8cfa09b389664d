"""The agent's load path records each request once: in pairbench's histograms, not also in
locust's own statistics (benchmarks/generator_overhead.py measures what that saves).

The agent's modules monkey-patch with gevent on import, so the trial runs in a subprocess,
with real locust users against the real target server.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pairbench.harness import server

TRIAL = r"""
import json, sys
from pairbench.harness import agent, loadgen  # agent first imports loadgen: gevent patches
import locust
from locust.env import Environment

env = Environment(user_classes=loadgen.USER_CLASSES, host=sys.argv[1], events=locust.events)
env.events.request.add_listener(loadgen.on_request)
if sys.argv[2] == "drop":
    runner = agent.without_locust_statistics(env, env.create_local_runner)
else:
    runner = env.create_local_runner()
command = {"path": "/healthz", "users": 2, "warmup_s": 0.1, "duration_s": 0.5}
reply = agent.run_local_trial(env, command)
in_locust = env.stats.total.num_requests
runner.quit()
print(json.dumps({"ours": reply["requests"], "errors": reply["errors"], "locust": in_locust}))
"""


def _trial(url: str, mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", TRIAL, url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


@pytest.mark.parametrize("mode", ["drop", "keep"])
def test_the_agent_records_in_its_histograms_and_not_in_locust_statistics(
    target_server: server.TargetServer, mode: str
) -> None:
    counts = _trial(target_server.url, mode)
    assert counts["ours"] > 0 and counts["errors"] == 0
    if mode == "drop":
        # The agent's runner: locust's bookkeeping is gone, pairbench's sees every request.
        assert counts["locust"] == 0
    else:
        # The control: a runner as locust makes it keeps its statistics (at least the window's).
        assert counts["locust"] >= counts["ours"]
