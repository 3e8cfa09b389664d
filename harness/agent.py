"""The load agent: locust in its own process(es), driven one trial at a time over stdin/stdout.

locust monkey-patches the process with gevent, so it never shares a process with the
orchestrator (asyncio, subprocess management) or with the target server. The orchestrator
starts `python -m pairbench.harness.agent --host URL` once per run and sends one JSON line per
trial; the agent answers with one JSON line holding the trial's raw HdrHistograms.

Three modes. `local`: one process generates the load. `master`: locust's master/worker mode,
the load comes from `--workers` local worker processes that it starts itself plus
`--remote-workers` that connect from other machines (`pairbench worker --master HOST:PORT`);
each worker records its own histograms and sends them encoded at the end of the trial, and
the master merges them exactly. `worker`: one such worker.
"""

# isort: off
from pairbench.harness import loadgen  # first: it monkey-patches the standard library

# isort: on
import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.queue
import locust
from hdrh.histogram import HdrHistogram
from locust.env import Environment
from locust.runners import MasterRunner, Runner

from pairbench.harness import procs
from pairbench.harness.load import worker_argv
from pairbench.harness.recorder import merge_parts

SPAWN_RATE = 10_000  # users per second: all of a trial's users start at once
METRICS_TIMEOUT_S = 5.0
# How long a master waits for its workers to connect; PAIRBENCH_WORKER_TIMEOUT overrides it.
WORKER_CONNECT_TIMEOUT_S = 60.0
WORKER_TIMEOUT_ENV = "PAIRBENCH_WORKER_TIMEOUT"
REPLY_TIMEOUT_S = 30.0
POLL_S = 0.1  # how often the master looks at its workers while it waits for them
RunnerT = TypeVar("RunnerT", bound=Runner)


def _fetch(url: str | None) -> str | None:
    import urllib.request

    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as response:
            return str(response.read().decode())
    except OSError:
        return None


def _users(command: dict[str, Any]) -> int:
    return int(command["users"]) + int((command.get("bystander") or {}).get("users", 0))


def _finish(
    command: dict[str, Any],
    parts: list[dict[str, Any]],
    started_at: float,
    before: str | None,
    after: str | None,
    load_s: float,
) -> dict[str, Any]:
    """The reply: merged parts, the window's start, both scrapes, and the time under load."""
    return {
        **merge_parts(parts),
        "started_at": started_at,
        "metrics_before": before,
        "metrics_after": after,
        "load_s": load_s,
    }


def without_locust_statistics(env: Environment, make_runner: Callable[[], RunnerT]) -> RunnerT:
    """`make_runner()`, less the request listener it adds: locust's own statistics.

    pairbench records every request in its own histograms (loadgen.on_request) and never reads
    locust's statistics; keeping both did the bookkeeping twice per request, generator CPU that
    the saturation rule counts (benchmarks/generator_overhead.py measures it).
    """
    hook = env.events.request
    before = list(hook._handlers)
    runner = make_runner()
    for handler in [h for h in hook._handlers if h not in before]:
        hook.remove_listener(handler)  # type: ignore[no-untyped-call]
    return runner


def run_local_trial(env: Environment, command: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then measure one variant for `duration_s`, in this process."""
    assert env.runner is not None
    classes = loadgen.configure(command)
    env.runner.start(_users(command), spawn_rate=SPAWN_RATE, user_classes=classes)
    loading = time.perf_counter()  # users started: warm-up, scrape, window (docs/run-format.md)
    gevent.sleep(float(command.get("warmup_s", 0.0)) + loadgen.start_delay(command))
    before = _fetch(command.get("metrics_before_url") or command.get("metrics_url"))
    started_at = time.time()
    loadgen.open_window()
    gevent.sleep(float(command["duration_s"]))
    loadgen.close_window()
    load_s = time.perf_counter() - loading
    after = _fetch(command.get("metrics_url"))
    env.runner.stop()
    part = loadgen.collect()
    return _finish(command, [part], started_at, before, after, load_s)


class Master:
    """Drives the workers through a trial with custom locust messages.

    `local` are the worker processes this master started: one that dies fails the trial at
    once, naming it, instead of leaving the master waiting for its reply.
    """

    def __init__(
        self,
        env: Environment,
        runner: MasterRunner,
        local: list[subprocess.Popen[bytes]],
        log: str | None,
    ) -> None:
        self.env, self.runner = env, runner
        self.local, self.log = local, log
        self.acks: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.results: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.expected = 0
        # client id -> what a worker says of itself once connected (its host, its address as
        # the master sees the route, its target): run.json's metadata names every host.
        self.hellos: dict[str, dict[str, Any]] = {}
        runner.register_message(
            "pb_hello", lambda msg, **_: self.hellos.update({msg.node_id: msg.data})
        )
        runner.register_message("pb_ack", lambda msg, **_: self.acks.put(msg.data))
        runner.register_message("pb_result", lambda msg, **_: self.results.put(msg.data))

    def check_workers(self) -> None:
        """Raise naming a local worker that has exited, or the count of workers gone missing."""
        for worker in self.local:
            code = worker.poll()
            if code is not None:
                where = f"; log: {self.log}" if self.log else ""
                raise RuntimeError(
                    f"locust worker (pid {worker.pid}) died: {procs.how_it_ended(code)}{where}"
                )
        missing = len(self.runner.clients.missing)
        if missing:
            raise RuntimeError(
                f"{missing} of {self.expected} locust worker(s) stopped answering the master"
            )

    def wait_for_workers(self, count: int, address: str, timeout: float) -> None:
        """Wait until `count` workers have connected; raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.runner.worker_count < count or len(self.hellos) < count:
            self.check_workers()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {self.runner.worker_count} of {count} locust worker(s) connected to "
                    f"the master at {address} within {timeout:g} s; start them with "
                    f"`pairbench worker --master {address} --host URL`"
                )
            gevent.sleep(0.05)
        self.expected = count

    def workers(self) -> list[dict[str, Any]]:
        """The connected workers in the order trials index them (sorted client ids)."""
        return [
            {"index": i, "id": client_id, **self.hellos.get(client_id, {})}
            for i, client_id in enumerate(sorted(self.runner.clients.keys()))
        ]

    def _gather(self, queue: gevent.queue.Queue[Any], count: int) -> list[Any]:
        replies: list[Any] = []
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while len(replies) < count:
            self.check_workers()
            try:
                replies.append(queue.get(timeout=POLL_S))
            except gevent.queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{len(replies)} of {count} locust worker(s) answered within "
                        f"{REPLY_TIMEOUT_S:g} s"
                    ) from None
        return replies

    def run_trial(self, command: dict[str, Any]) -> dict[str, Any]:
        workers = sorted(self.runner.clients.keys())
        for index, client_id in enumerate(workers):
            self.runner.send_message(
                "pb_configure",
                {"command": command, "index": index, "count": len(workers)},
                client_id=client_id,
            )
        self._gather(self.acks, len(workers))
        self.runner.start(
            _users(command), spawn_rate=SPAWN_RATE, user_classes=loadgen.configure(command)
        )
        loading = time.perf_counter()
        gevent.sleep(float(command.get("warmup_s", 0.0)) + loadgen.start_delay(command))
        before = _fetch(command.get("metrics_before_url") or command.get("metrics_url"))
        started_at = time.time()
        self.runner.send_message("pb_open")
        gevent.sleep(float(command["duration_s"]))
        self.runner.send_message("pb_close")
        load_s = time.perf_counter() - loading
        parts = self._gather(self.results, len(workers))
        after = _fetch(command.get("metrics_url"))
        self.runner.stop()
        reply = _finish(command, parts, started_at, before, after, load_s)
        # Each worker's share, by index: the merged histogram's count is their sum
        # (docs/run-format.md, trials[].workers).
        reply["workers"] = sorted(
            (
                {
                    "index": p["index"],
                    "requests": p["requests"],
                    "count": HdrHistogram.decode(p["histogram"]).get_total_count(),
                }
                for p in parts
            ),
            key=lambda w: int(w["index"]),
        )
        return reply


def _serve(run_trial: Any, on_quit: Any, workers: list[dict[str, Any]] | None = None) -> None:
    out = sys.stdout
    hello: dict[str, Any] = {"ready": True, "locust": locust.__version__}
    if workers is not None:
        hello["workers"] = workers
    out.write(json.dumps(hello) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("op") == "quit":
                break
            try:
                reply = run_trial(command)
            except RuntimeError as e:  # the master's own one-line reports
                reply = {"error": str(e)}
            except Exception as e:  # report, keep serving: the orchestrator decides
                reply = {"error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        on_quit()


def run_worker(env: Environment, master: str) -> None:
    """Serve the master's trials until it quits."""
    host, _, port = master.rpartition(":")
    host = host or "127.0.0.1"
    # Its own target, not the one the master sends with every spawn (loadgen.Trial.own_host).
    loadgen.Trial.own_host = env.host
    runner = without_locust_statistics(env, lambda: env.create_worker_runner(host, int(port)))
    runner.send_message(
        "pb_hello",
        {
            "hostname": socket.gethostname(),
            "address": _address_towards(host, int(port)),
            "target": env.host,
        },
    )

    def configure(msg: Any, **_: Any) -> None:
        loadgen.configure(msg.data["command"], msg.data["index"], msg.data["count"])
        runner.send_message("pb_ack", {"index": msg.data["index"]})

    def close(msg: Any, **_: Any) -> None:
        loadgen.close_window()
        runner.send_message("pb_result", {**loadgen.collect(), "index": loadgen.Trial.worker_index})

    runner.register_message("pb_configure", configure)
    runner.register_message("pb_open", lambda msg, **_: loadgen.open_window())
    runner.register_message("pb_close", close, concurrent=True)  # draining must not block receive
    runner.greenlet.join()


def _address_towards(host: str, port: int) -> str | None:
    """This machine's address on the route to the master: a UDP connect sends no packet."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Parse the mode and serve."""
    parser = argparse.ArgumentParser(prog="pairbench-agent")
    parser.add_argument("--host", help="base URL of the target, e.g. http://127.0.0.1:8000")
    parser.add_argument("--mode", choices=["local", "master", "worker"], default="local")
    parser.add_argument("--workers", type=int, default=0, help="master: local worker processes")
    parser.add_argument(
        "--remote-workers", type=int, default=0, help="master: workers from elsewhere"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="master: address workers connect to")
    parser.add_argument("--port", type=int, default=0, help="master: port (default: a free one)")
    parser.add_argument("--master", help="worker: HOST:PORT of the master")
    parser.add_argument("--log", help="master: the file its local workers write their errors to")
    args = parser.parse_args(argv)
    # All of a trial's users start at once, on purpose: silence locust's ramp-up advice.
    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate" not in r.getMessage())
    env = Environment(user_classes=loadgen.USER_CLASSES, host=args.host, events=locust.events)
    env.events.request.add_listener(loadgen.on_request)  # type: ignore[no-untyped-call]
    if args.mode == "worker":
        run_worker(env, args.master)
        return 0
    if args.mode == "local":
        runner = without_locust_statistics(env, env.create_local_runner)
        _serve(lambda c: run_local_trial(env, c), runner.quit)
        return 0
    port = args.port or procs.free_port(args.bind)
    master_runner = env.create_master_runner(args.bind, port)
    # Its message handlers before anything yields to gevent: a worker's hello that arrived
    # before them would be dropped, and the master would wait for it in vain.
    master = Master(env, master_runner, [], args.log)
    # In this agent's process group, so stopping the agent's group ends them too; with the
    # parent-death signal, so a SIGKILL of the agent ends them as well.
    workers = [
        procs.spawn(
            worker_argv(args.host, f"127.0.0.1:{port}"),
            log=Path(args.log) if args.log else None,
            new_session=False,
        )
        for _ in range(args.workers)
    ]
    master.local = workers

    def quit_all() -> None:
        master_runner.quit()
        for worker in workers:
            procs.stop_pid(worker.pid, popen=worker)

    timeout = float(os.environ.get(WORKER_TIMEOUT_ENV) or WORKER_CONNECT_TIMEOUT_S)
    try:
        master.wait_for_workers(args.workers + args.remote_workers, f"{args.bind}:{port}", timeout)
    except RuntimeError as e:
        sys.stdout.write(json.dumps({"ready": False, "error": str(e)}) + "\n")
        quit_all()
        return 1
    _serve(master.run_trial, quit_all, master.workers())
    return 0


if __name__ == "__main__":
    sys.exit(main())
