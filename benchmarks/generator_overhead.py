"""How much load-generation capacity pairbench's recording costs, against plain locust.

Both generators hit the same trivial endpoint (/healthz of the targets app) on the same server,
in alternating runs, with the same users and duration. Each reports requests and its own CPU
seconds over the measurement window; the figure compared is requests per generator CPU-second
(req/s per generator core), because on a small shared machine absolute req/s is set by the
server, not by the generator. Target: pairbench keeps at least 90% of plain locust's rate.
A third series records time to first byte as well (the scenario's opt-in `ttfb = true`): its
figure against pairbench's own says what that costs.

    python benchmarks/generator_overhead.py [--users 8] [--seconds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pairbench.harness import server, services
from pairbench.harness.load import LoadAgent

PATH = "/healthz"
PLAIN_LOCUST = r"""
import json, sys, time
import gevent
import locust
import psutil
from locust import FastHttpUser, constant, task
from locust.env import Environment

class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get(sys.argv[2])

env = Environment(user_classes=[Plain], host=sys.argv[1], events=locust.events)
runner = env.create_local_runner()
users, warmup, seconds = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
runner.start(users, spawn_rate=users)
gevent.sleep(warmup)
me = psutil.Process()
before_cpu, before_n = me.cpu_times(), env.stats.total.num_requests
t0 = time.perf_counter()
gevent.sleep(seconds)
after_cpu, after_n, elapsed = me.cpu_times(), env.stats.total.num_requests, time.perf_counter() - t0
runner.quit()
cpu = (after_cpu.user - before_cpu.user) + (after_cpu.system - before_cpu.system)
print(json.dumps({"requests": after_n - before_n, "cpu_s": cpu, "elapsed_s": elapsed}))
"""


def plain_locust(url: str, users: int, warmup: float, seconds: float) -> dict[str, float]:
    """Plain locust FastHttpUser in library mode: its own stats, no listener of ours."""
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_LOCUST, url, PATH, str(users), str(warmup), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def pairbench_agent(
    agent: LoadAgent, users: int, warmup: float, seconds: float, ttfb: bool = False
) -> dict[str, float]:
    """pairbench's closed-model path: request event -> HdrHistogram (and TTFB if asked)."""
    reply = agent.trial(PATH, users, warmup, seconds, ttfb=ttfb)
    cpu_s = reply["generator_cpu_percent"] / 100.0 * reply["elapsed_s"]
    return {"requests": reply["requests"], "cpu_s": cpu_s, "elapsed_s": reply["elapsed_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="pairbench-bench-"))
    names = ["plain locust", "pairbench", "pairbench ttfb"]
    per_core: dict[str, list[float]] = {name: [] for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    with services.provide(services.ServiceOptions.from_env()) as endpoints:
        target = server.start(endpoints.pg_dsn, endpoints.redis_url, logs / "server.log")
        agent = LoadAgent(target.url, logs / "agent.log")
        try:
            for repeat in range(args.repeats):
                runs = [
                    (
                        "plain locust",
                        lambda: plain_locust(target.url, args.users, args.warmup, args.seconds),
                    ),
                    (
                        "pairbench",
                        lambda: pairbench_agent(agent, args.users, args.warmup, args.seconds),
                    ),
                    (
                        "pairbench ttfb",
                        lambda: pairbench_agent(
                            agent, args.users, args.warmup, args.seconds, ttfb=True
                        ),
                    ),
                ]
                # Rotate who goes first: drift hits every series alike.
                shift = repeat % len(runs)
                runs = runs[shift:] + runs[:shift]
                for name, run in runs:
                    result = run()
                    per_core[name].append(result["requests"] / result["cpu_s"])
                    rates[name].append(result["requests"] / result["elapsed_s"])
                    print(
                        f"{name:>14}: {result['requests'] / result['elapsed_s']:8.0f} req/s, "
                        f"{result['requests'] / result['cpu_s']:8.0f} req per generator CPU-second"
                    )
        finally:
            agent.close()
            target.stop()
    plain, ours, ttfb = (statistics.median(per_core[name]) for name in names)
    print(
        f"\nmedian req per generator CPU-second: plain locust {plain:.0f}, pairbench {ours:.0f}"
        f" -> pairbench keeps {100 * ours / plain:.0f}% (target >= 90%)"
    )
    print(
        f"with time to first byte: {ttfb:.0f} -> {100 * ttfb / ours:.0f}% of pairbench without it"
        f" ({100 * ttfb / plain:.0f}% of plain locust)"
    )
    print(
        f"median req/s (server-bound here): plain locust {statistics.median(rates['plain locust']):.0f},"
        f" pairbench {statistics.median(rates['pairbench']):.0f}"
    )


if __name__ == "__main__":
    main()
