"""What pairbench's load path costs in generator CPU per request, against plain locust and wrk.

Four generators hit the same trivial endpoint (/healthz of the targets app) on the same server,
with the same connections and duration, in runs that alternate (each repeat rotates who goes
first, so drift hits every series alike):

- pairbench: the agent's closed-model path (request event -> HdrHistogram), one process;
- plain locust: FastHttpUser in library mode, locust's own statistics only;
- pairbench ttfb: the agent recording time to first byte as well (a scenario's `ttfb = true`);
- wrk (Debian's package, `apt-get install wrk`): one thread, a C event loop; skipped, saying so,
  when it is not on PATH.

The figure compared is requests per generator CPU-second: on a small shared machine absolute
req/s is set by the server, not by the generator, while CPU per request is the generator's own.
CPU is user+system time of the generator's own process over the measurement window only:

- the locust generators read their own process's times (psutil) when the window opens, after
  the warm-up, and when it closes, and count the requests completed in between;
- wrk cannot report part of a run, so it runs twice back to back: a warm-up run of `--warmup`
  seconds, then a run of `--warmup + --seconds`; the window is the difference of the two
  (requests from each run's own report, "N requests in"; CPU from the kernel's account of each
  reaped process, os.wait4: user+system of all its threads to its last instruction, which
  psutil cannot read once the process has exited). Start-up, connecting and warm-up cancel.

Target (issue 11): pairbench keeps at least 97% of plain locust's requests per CPU-second.
A closed-loop generator's CPU per request falls as the server answers faster, and the server's
speed swings between runs on a shared machine, so the verdict compares the generators at equal
throughput (a common-slope fit of log CPU per request on log req/s over every locust run, with
its 95% t-interval: `adjusted_estimates`); the ratio paired by repeat is printed beside it. The
request event's listeners are also timed alone, in-process: locust's own statistics (what plain
locust does per request) against pairbench's recording (what the agent does instead).

    python benchmarks/generator_overhead.py [--users 8] [--seconds 5] [--warmup 1]
        [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from scipy import stats

from pairbench.errors import EXIT_USAGE, InfrastructureError, PairbenchError
from pairbench.harness import server, services
from pairbench.harness.load import LoadAgent
from pairbench.results.analysis.ratios import ratio_with_ci

PATH = "/healthz"
TARGET_SHARE = 0.97  # issue 11: pairbench keeps this share of plain locust's req per CPU-second
PAIRBENCH, PLAIN, TTFB, WRK = "pairbench", "plain locust", "pairbench ttfb", "wrk"
WRK_THREADS = 1  # one thread on one core, as one locust process
WRK_GRACE_S = 30.0  # beyond its duration, before a wrk that does not exit is killed
WRK_POLL_S = 0.05
WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
WRK_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

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
me, total = psutil.Process(), env.stats.total
before_cpu, before_n, before_e = me.cpu_times(), total.num_requests, total.num_failures
t0 = time.perf_counter()
gevent.sleep(seconds)
after_cpu, after_n, elapsed = me.cpu_times(), total.num_requests, time.perf_counter() - t0
after_e = total.num_failures
runner.quit()
cpu = (after_cpu.user - before_cpu.user) + (after_cpu.system - before_cpu.system)
print(json.dumps({"requests": after_n - before_n, "errors": after_e - before_e, "cpu_s": cpu,
                  "elapsed_s": elapsed}))
"""

# The request event's listeners alone, in-process: what each generator does per request beyond
# the HTTP exchange they share. One real reply from the target, then LISTENER_EVENTS events
# carrying it, timed in process CPU time (gevent patches on import: its own process).
LISTENER_EVENTS = 300_000
LISTENERS = r"""
import json, sys, time
from pairbench.harness import agent, loadgen
import locust
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

env = Environment(user_classes=loadgen.USER_CLASSES, host=sys.argv[1], events=locust.events)
hook = env.events.request
before = list(hook._handlers)
env.create_local_runner()
statistics = [h for h in hook._handlers if h not in before]  # locust's own, as plain locust
loadgen.configure({"path": sys.argv[2], "users": 1})
step = loadgen.Trial.steps[0]
session = FastHttpSession(sys.argv[1], request_event=hook, user=None)
captured = {}
hook._handlers[:] = [lambda **meta: captured.update(meta)]
session.request(step.method, step.path, name=step.name)
captured["context"] = {}
loadgen.open_window()
events = int(sys.argv[3])

def cost(handlers):
    hook._handlers[:] = handlers
    started = time.process_time()
    for _ in range(events):
        hook.fire(**captured)
    return (time.process_time() - started) / events * 1e6

print(json.dumps({"plain locust": cost(statistics), "pairbench": cost([loadgen.on_request])}))
"""

Result = dict[str, float]


def listener_cost(url: str) -> dict[str, float]:
    """CPU microseconds per request event: locust's statistics (plain) and pairbench's."""
    return _script_figures("the listener timing", LISTENERS, url, PATH, str(LISTENER_EVENTS))


def _script_figures(who: str, script: str, *args: str) -> dict[str, float]:
    """Run `python -c script args` and read the JSON object of numbers on its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:]) or "no output"
        raise InfrastructureError(f"{who} exited with code {done.returncode}: {tail}")
    return {k: float(v) for k, v in json.loads(lines[-1]).items()}


def plain_locust(url: str, users: int, warmup: float, seconds: float) -> Result:
    """Plain locust FastHttpUser in library mode: its own stats, no listener of ours."""
    return _script_figures(
        "plain locust", PLAIN_LOCUST, url, PATH, str(users), str(warmup), str(seconds)
    )


def pairbench_agent(
    agent: LoadAgent, users: int, warmup: float, seconds: float, ttfb: bool = False
) -> Result:
    """pairbench's closed-model path: request event -> HdrHistogram (and TTFB if asked)."""
    reply = agent.trial(PATH, users, warmup, seconds, ttfb=ttfb)
    # One process: its window CPU is cpu_percent x window (harness/loadgen.py, close_window).
    cpu_s = reply["generator_cpu_percent"] / 100.0 * reply["elapsed_s"]
    return {
        "requests": float(reply["requests"]),
        "errors": float(reply["errors"]),
        "cpu_s": cpu_s,
        "elapsed_s": float(reply["elapsed_s"]),
    }


def parse_wrk(report: str) -> tuple[int, float, int]:
    """Requests, seconds and errors (non-2xx/3xx plus socket errors) from wrk's report."""
    found = WRK_REQUESTS.search(report)
    if found is None:
        raise InfrastructureError(f"wrk printed no 'requests in' line: {report.strip()[-200:]!r}")
    requests, seconds = int(found[1]), float(found[2]) * WRK_UNIT_S[found[3]]
    errors = sum(int(n) for n in WRK_NON_2XX.findall(report))
    for counts in WRK_SOCKET_ERRORS.findall(report):
        errors += sum(int(n) for n in counts)
    return requests, seconds, errors


def wrk_process(wrk: str, url: str, users: int, seconds: int) -> Result:
    """One whole wrk process: its report's requests, and its CPU from the kernel on reaping."""
    argv = [wrk, "-t", str(WRK_THREADS), "-c", str(users), "-d", f"{seconds}s", "--latency"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*argv, url + PATH], stdout=out, stderr=err)
        # Reaped here with wait4, not by Popen: wait4 returns the process's rusage (every
        # thread's user+system time), which no one can read after the process is gone.
        deadline = time.monotonic() + seconds + WRK_GRACE_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise InfrastructureError(f"wrk did not exit within {seconds + WRK_GRACE_S:g} s")
            time.sleep(WRK_POLL_S)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        report = out.read().decode(errors="replace")
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace").strip() or report.strip()
            raise InfrastructureError(f"wrk exited with code {proc.returncode}: {tail[-200:]}")
    requests, elapsed, errors = parse_wrk(report)
    return {
        "requests": float(requests),
        "errors": float(errors),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "elapsed_s": elapsed,
    }


def wrk_window(wrk: str, url: str, users: int, warmup: int, seconds: int) -> Result:
    """wrk's window: a run of warmup + seconds less a warm-up run of warmup seconds."""
    if not warmup:
        return wrk_process(wrk, url, users, seconds)
    short = wrk_process(wrk, url, users, warmup)  # first: it warms the server up, as the others'
    whole = wrk_process(wrk, url, users, warmup + seconds)
    window = {k: whole[k] - short[k] for k in ("requests", "errors", "cpu_s", "elapsed_s")}
    # The uncorrected figure of the long run, to show what the subtraction changes.
    window["whole_run_per_cpu_s"] = whole["requests"] / whole["cpu_s"]
    return window


def _spread(values: list[float], fmt: str) -> str:
    """`median [min..max]` of per-repeat values, or the one value."""
    if len(values) == 1:
        return format(values[0], fmt)
    low, high = min(values), max(values)
    return f"{format(statistics.median(values), fmt)} [{format(low, fmt)}..{format(high, fmt)}]"


def _figures(runs: list[Result]) -> dict[str, list[float]]:
    """Per-repeat columns of one generator's runs."""
    return {
        "requests": [r["requests"] for r in runs],
        "cpu_s": [r["cpu_s"] for r in runs],
        "cpu_us_per_request": [1e6 * r["cpu_s"] / r["requests"] for r in runs],
        "requests_per_cpu_s": [r["requests"] / r["cpu_s"] for r in runs],
        "requests_per_s": [r["requests"] / r["elapsed_s"] for r in runs],
    }


def table(series: dict[str, list[Result]]) -> tuple[str, dict[str, Any]]:
    """The printed table and its figures: per generator, median [min..max] over repeats."""
    figures = {name: _figures(runs) for name, runs in series.items()}
    for columns in figures.values():
        per_cpu = columns["requests_per_cpu_s"]
        for other, key in ((PLAIN, "vs_plain_locust"), (WRK, "vs_wrk")):
            if other in figures:
                theirs = figures[other]["requests_per_cpu_s"]
                columns[key] = [a / b for a, b in zip(per_cpu, theirs, strict=True)]
    header = (
        f"{'generator':<15} {'requests':>23} {'CPU s':>17} {'CPU us/request':>19} "
        f"{'req per CPU-s':>23} {'vs locust':>19} {'vs wrk':>19}"
    )
    lines = [header, "-" * len(header)]
    for name, c in figures.items():
        ratio = {
            key: _spread(c[key], ".2f") if key in c else "-"
            for key in ("vs_plain_locust", "vs_wrk")
        }
        lines.append(
            f"{name:<15} {_spread(c['requests'], '.0f'):>23} {_spread(c['cpu_s'], '.2f'):>17} "
            f"{_spread(c['cpu_us_per_request'], '.1f'):>19} "
            f"{_spread(c['requests_per_cpu_s'], '.0f'):>23} "
            f"{ratio['vs_plain_locust']:>19} {ratio['vs_wrk']:>19}"
        )
    return "\n".join(lines), figures


@dataclass(frozen=True)
class Estimate:
    """A generator's req per CPU-second over plain locust's, with its 95% interval."""

    ratio: float
    low: float | None
    high: float | None
    method: str

    def interval(self) -> str:
        if self.low is None or self.high is None:
            return "no interval"
        return f"95% interval {self.low:.1%}..{self.high:.1%}"


def paired_estimate(figures: dict[str, Any], name: str) -> Estimate:
    """Geometric mean of the per-repeat ratios (paired within a repeat), t-interval on logs."""
    found = ratio_with_ci(
        figures[name]["requests_per_cpu_s"], figures[PLAIN]["requests_per_cpu_s"], paired=True
    )
    assert found.ratio is not None  # every run had requests and CPU (checked as they ran)
    return Estimate(found.ratio, found.ci_low, found.ci_high, "paired by repeat")


def adjusted_estimates(series: dict[str, list[Result]]) -> dict[str, Estimate]:
    """Each locust generator against plain locust at the same throughput.

    A closed-loop generator's CPU per request falls as the server answers faster (more replies
    per wake-up), and on a shared machine the server's speed swings between runs: the raw
    ratio mostly measures which run got the faster server. So fit, over every locust run,
    log(CPU per request) = generator's level + one common slope x log(req/s), and compare the
    levels (least squares; t-interval from the fit's residuals). wrk, another mechanism, is
    left out of the fit. Needs more runs than parameters; else {}.
    """
    names = [name for name in (PAIRBENCH, PLAIN, TTFB) if series.get(name)]
    runs = [(i, r) for i, name in enumerate(names) for r in series[name]]
    n, p = len(runs), len(names) + 1
    if PLAIN not in names or n <= p:
        return {}
    x = np.zeros((n, p))
    y = np.empty(n)
    for row, (i, r) in enumerate(runs):
        x[row, i] = 1.0
        x[row, -1] = math.log(r["requests"] / r["elapsed_s"])
        y[row] = math.log(r["cpu_s"] / r["requests"])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ beta
    variance = float(residual @ residual) / (n - p)
    cov = variance * np.linalg.pinv(x.T @ x)
    t = float(stats.t.ppf(0.975, n - p))
    plain = names.index(PLAIN)
    found: dict[str, Estimate] = {}
    for i, name in enumerate(names):
        # log(req per CPU-s / plain's) = plain's log CPU per request level - this one's
        diff = float(beta[plain] - beta[i])
        se = math.sqrt(max(0.0, float(cov[plain, plain] + cov[i, i] - 2 * cov[plain, i])))
        found[name] = Estimate(
            math.exp(diff),
            math.exp(diff - t * se),
            math.exp(diff + t * se),
            f"at equal throughput (common slope {float(beta[-1]):.2f})",
        )
    return found


def verdict(figures: dict[str, Any], adjusted: dict[str, Estimate]) -> tuple[list[str], bool]:
    """PASS/FAIL for the 97% target, judged at equal throughput when the fit is possible."""
    raw = paired_estimate(figures, PAIRBENCH)
    judged = adjusted.get(PAIRBENCH, raw)
    passed = judged.ratio >= TARGET_SHARE
    if judged.low is None or judged.high is None:
        how = "one repeat cannot show the noise"
    elif judged.low >= TARGET_SHARE:
        how = "the whole interval clears the target"
    elif judged.high < TARGET_SHARE:
        how = "the whole interval misses the target"
    else:
        how = "the interval straddles the target: not settled at this noise"
    per_repeat = figures[PAIRBENCH]["vs_plain_locust"]
    lines = [
        f"target: pairbench keeps >= {TARGET_SHARE:.0%} of plain locust's req per CPU-second: "
        f"{'PASS' if passed else 'FAIL'}, {judged.ratio:.1%} {judged.method}, "
        f"{judged.interval()}; {how}",
        f"  paired by repeat: {raw.ratio:.1%}, {raw.interval()}, "
        f"per repeat {min(per_repeat):.1%}..{max(per_repeat):.1%}",
    ]
    return lines, passed


class OneLineParser(argparse.ArgumentParser):
    """Bad input is one line naming what is wrong, and exit code 2 (pairbench/errors.py)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8, help="connections, every generator")
    parser.add_argument("--seconds", type=int, default=5, help="measurement window (whole s)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured warm-up (whole s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    # wrk takes whole seconds (its -d), hence whole seconds for every generator.
    for flag, value, least in (
        ("--users", args.users, 1),
        ("--seconds", args.seconds, 1),
        ("--warmup", args.warmup, 0),
        ("--repeats", args.repeats, 1),
    ):
        if value < least:
            parser.error(f"{flag} {value}: must be at least {least}")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install wrk): its series is skipped")
    users, warmup, seconds = args.users, args.warmup, args.seconds
    logs = Path(tempfile.mkdtemp(prefix="pairbench-bench-"))
    series: dict[str, list[Result]] = {PAIRBENCH: [], PLAIN: [], TTFB: []}
    if wrk is not None:
        series[WRK] = []
    try:
        with services.provide(services.ServiceOptions.from_env()) as endpoints:
            target = server.start(endpoints.pg_dsn, endpoints.redis_url, logs / "server.log")
            agent: LoadAgent | None = None
            try:
                agent = LoadAgent(target.url, logs / "agent.log")
                running = agent
                runs: dict[str, Callable[[], Result]] = {
                    PAIRBENCH: lambda: pairbench_agent(running, users, warmup, seconds),
                    PLAIN: lambda: plain_locust(target.url, users, warmup, seconds),
                    TTFB: lambda: pairbench_agent(running, users, warmup, seconds, ttfb=True),
                }
                if wrk is not None:
                    runs[WRK] = lambda: wrk_window(wrk, target.url, users, warmup, seconds)
                listeners = listener_cost(target.url)
                order = list(runs)
                for repeat in range(args.repeats):
                    shift = repeat % len(order)  # rotate who goes first
                    for name in order[shift:] + order[:shift]:
                        result = runs[name]()
                        if result["requests"] <= 0 or result["cpu_s"] <= 0:
                            raise InfrastructureError(
                                f"{name}: no requests or no CPU in the window ({result})"
                            )
                        series[name].append(result)
                        print(
                            f"repeat {repeat + 1} {name:>14}: "
                            f"{result['requests'] / result['elapsed_s']:7.0f} req/s, "
                            f"{1e6 * result['cpu_s'] / result['requests']:6.1f} CPU us/request, "
                            f"{result['requests'] / result['cpu_s']:6.0f} req per CPU-second"
                            + (f", {result['errors']:.0f} errors" if result["errors"] else "")
                        )
            finally:
                if agent is not None:
                    agent.close()
                target.stop()
    except PairbenchError as e:  # the logs stay for the reader: the message names them
        print(f"generator_overhead: {e}", file=sys.stderr)
        return e.exit_code
    shutil.rmtree(logs, ignore_errors=True)
    printed, figures = table(series)
    print(
        f"\n{users} connections, {warmup} s warm-up, {seconds} s window, {args.repeats} repeats;"
        " median [min..max] over repeats; ratios are per repeat, req per CPU-second"
    )
    print(printed)
    adjusted = adjusted_estimates(series)
    lines, passed = verdict(figures, adjusted)
    print("\n".join(lines))
    if TTFB in adjusted:
        ttfb = adjusted[TTFB]
        print(
            f"  pairbench ttfb at equal throughput: {ttfb.ratio:.1%} of plain locust, {ttfb.interval()}"
        )
    ttfb_share = statistics.median(figures[TTFB]["requests_per_cpu_s"]) / statistics.median(
        figures[PAIRBENCH]["requests_per_cpu_s"]
    )
    print(f"recording time to first byte keeps {ttfb_share:.0%} of pairbench's rate without it")
    if WRK in figures:
        print(
            "pairbench against wrk: "
            f"{_spread(figures[PAIRBENCH]['vs_wrk'], '.1%')} of wrk's req per CPU-second"
        )
    print(
        "request event listeners alone (in-process CPU per event): plain locust's statistics "
        f"{listeners[PLAIN]:.2f} us, pairbench's recording {listeners[PAIRBENCH]:.2f} us"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "settings": {
                        "users": users,
                        "warmup_s": warmup,
                        "seconds": seconds,
                        "repeats": args.repeats,
                        "path": PATH,
                        "wrk": wrk,
                    },
                    "runs": series,
                    "listener_us_per_event": listeners,
                    "figures": figures,
                    "target": {
                        "share": TARGET_SHARE,
                        "passed": passed,
                        "paired": asdict(paired_estimate(figures, PAIRBENCH)),
                        "at_equal_throughput": {k: asdict(v) for k, v in adjusted.items()},
                    },
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
