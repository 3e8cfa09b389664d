"""`pairbench run --live`: a page on 127.0.0.1 showing the run as it happens.

What it shows: the trial running now (pair, knob value, round, variant, from the runner's
progress callbacks), how many trials are done of at most how many, the run's messages, and
each pair's curve (its headline metric against the knob, one line per variant) filling in as
trials land in run.json.

How it stays out of the measurement's way (docs/architecture.md, "The live view"):

- The callbacks only store a line of text and a few counters under a lock: nothing is
  computed in the runner's thread.
- run.json is read by the HTTP thread when a page asks for the state, and only when the file
  changed since the last read (its size and mtime); each trial's histogram is decoded once and
  merged into its (knob value, variant) cell. No page open: no work at all.
- The server is a thread of pairbench's own process (the orchestrator), which during a trial
  only waits for the load agent's reply; the load generator and the target are other
  processes. The page asks once a second for a few kilobytes.
- The thread ends with the run, on every exit path: the `with` block closes it on success,
  failure and Ctrl-C, and a killed pairbench takes its threads with it.

It lives in the command layer, above the engine and the reader (docs/architecture.md, Layers):
the engine only calls the Progress callbacks it always had, plus `begun` with the run's folder.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from pairbench.harness import runner
from pairbench.harness.rounds import TrialStep
from pairbench.results.analysis.knobs import knob_key
from pairbench.results.analysis.rounds import subject_record
from pairbench.results.analysis.stats import ratio_metric, ratio_subject
from pairbench.results.figures.palette import variant_colours
from pairbench.results.io import histograms
from pairbench.runmodel import RUN_FILE

from . import preflight

LIVE_HOST = "127.0.0.1"  # loopback only: the page shows paths, pair names and the machine
POLL_MS = 1000  # how often the page asks for the state
MESSAGES_KEPT = 8  # the run's last lines shown on the page
# After the run ends, a page that polled this recently gets one more answer (the final
# status) before the server stops, waiting at most one poll interval and a little.
RECENT_POLL_S = 5.0
LINGER_S = POLL_MS / 1000 + 0.3
SERVE_POLL_S = 0.2  # how quickly serve_forever notices a shutdown request


def trial_fields(trial: TrialStep) -> dict[str, Any]:
    """What the page shows of the trial running now: the runner's own fields, never re-parsed."""
    return {
        "text": str(trial),
        "pair": trial.pair,
        "knob": trial.knob_name,
        "value": f"{trial.knob:g}",
        "round": trial.round,
        "rounds": trial.rounds,
        "adaptive": trial.adaptive,  # at most `rounds`: it may stop earlier
        "variant": trial.variant if trial.side is None else f"{trial.variant} ({trial.side})",
    }


@dataclass
class _Cell:
    """One (knob value, variant) of a pair: its valid trials' histograms merged."""

    histogram: Any = field(default_factory=histograms.new_histogram)
    rounds: int = 0


@dataclass
class _PairCurve:
    trials_read: int = 0
    cells: dict[tuple[str, str], _Cell] = field(default_factory=dict)
    invalid: int = 0


class Curves:
    """Each pair's curve from run.json, brought up to date when the file changed."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.seen: tuple[int, int] | None = None  # (size, mtime_ns) of the run.json last read
        self.pairs: dict[str, _PairCurve] = {}
        self.document: dict[str, Any] = {"pairs": []}
        self.refresh_ms: float | None = None  # what the last read of a changed run.json cost

    def update(self, folder: Path | None) -> dict[str, Any]:
        """The curves as JSON-ready data; reads run.json only when it changed."""
        if folder is None:
            return self.document
        if folder != self.folder:
            self.folder, self.seen, self.pairs = folder, None, {}
        path = folder / RUN_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            return self.document
        if (stat.st_size, stat.st_mtime_ns) == self.seen:
            return self.document
        started = time.perf_counter()
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self.document  # replaced atomically, so not half-written; try next poll
        self.seen = (stat.st_size, stat.st_mtime_ns)
        self.document = {
            "run_id": run.get("run_id"),
            "status": run.get("status"),
            "profile": run.get("profile"),
            "pairs": [self._pair(name, pair) for name, pair in (run.get("pairs") or {}).items()],
        }
        self.refresh_ms = round((time.perf_counter() - started) * 1000, 2)
        return self.document

    def _pair(self, name: str, pair: Mapping[str, Any]) -> dict[str, Any]:
        curve = self.pairs.setdefault(name, _PairCurve())
        trials = pair.get("trials") or []
        metric, subject = ratio_metric(pair), ratio_subject(pair)
        for trial in trials[curve.trials_read :]:  # only what landed since the last read
            if trial.get("valid") is not True:
                curve.invalid += 1
                continue
            record = subject_record(trial, subject)
            if record is None:
                continue
            cell = curve.cells.setdefault((knob_key(trial["knob"]), trial["variant"]), _Cell())
            cell.histogram.add(histograms.decode(record["histogram"]))
            cell.rounds += 1
        curve.trials_read = len(trials)
        variants = pair.get("variants") or []
        colours = variant_colours(variants)
        points: dict[str, list[dict[str, Any]]] = {v["name"]: [] for v in variants}
        for (key, variant), cell in sorted(curve.cells.items(), key=lambda c: float(c[0][0])):
            value_us = histograms.metric_us(cell.histogram, metric)
            if value_us is not None and variant in points:
                ms = value_us / histograms.US_PER_MS
                points[variant].append({"knob": float(key), "ms": ms, "rounds": cell.rounds})
        knob = pair.get("knob") or {}
        who = "bystander " if subject == "bystander" else ""
        return {
            "name": name,
            "title": pair.get("title", name),
            "metric": f"{who}{metric} latency (ms)",
            "knob": {
                "name": knob.get("name", "knob"),
                "label": knob.get("label") or knob.get("name", "knob"),
                "unit": knob.get("unit") or "",
                "values": [float(v) for v in knob.get("values") or []],
                "log_scale": bool(knob.get("log_scale")),
            },
            "variants": [
                {"name": v["name"], "role": v.get("role"), "colour": colours[v["name"]]}
                for v in variants
            ],
            "points": points,
            "trials": len(trials),
            "invalid": curve.invalid,
            "verified": (pair.get("verification") or {}).get("passed"),
        }


class LiveState:
    """What the runner reported, kept for the page; the callbacks do no more than store it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.folder: Path | None = None
        self.now: dict[str, Any] | None = None
        self.started = 0  # trials begun
        self.total: int | None = None
        self.skipped = 0
        self.messages: list[str] = []
        self.ended: str | None = None  # why the view stopped: "finished", "interrupted", ...
        self.clock = time.monotonic()
        self.curves = Curves()
        self.reading = threading.Lock()  # one page's read of run.json at a time

    def progress(self, inner: runner.Progress) -> runner.Progress:
        """`inner`'s callbacks, each also noting what it was told here."""

        def noted(callback: Callable[[Any], None], note: Callable[[Any], None]) -> Any:
            def both(value: Any) -> None:
                with self.lock:
                    note(value)
                callback(value)

            return both

        def step(trial: TrialStep | str) -> None:
            shown = trial_fields(trial) if isinstance(trial, TrialStep) else {"text": trial}
            self.now, self.started = shown, self.started + 1

        def message(text: str) -> None:
            self.messages = [*self.messages, text][-MESSAGES_KEPT:]

        def begun(folder: Any) -> None:
            self.folder = Path(folder)

        return runner.Progress(
            total=noted(inner.total, lambda n: setattr(self, "total", n or None)),
            step=noted(inner.step, step),
            message=noted(inner.message, message),
            skip=noted(inner.skip, lambda n: setattr(self, "skipped", self.skipped + n)),
            begun=noted(inner.begun, begun),
        )

    def snapshot(self) -> dict[str, Any]:
        """The page's state: the runner's last word and the curves so far."""
        with self.lock:
            state = {
                "now": self.now,
                "started": self.started,
                "total": None if self.total is None else max(0, self.total - self.skipped),
                "messages": list(self.messages),
                "elapsed_s": round(time.monotonic() - self.clock, 1),
                "ended": self.ended,
                "poll_ms": POLL_MS,
            }
            folder = self.folder
        with self.reading:
            state["run"] = self.curves.update(folder)
            state["refresh_ms"] = self.curves.refresh_ms
        return state


class LiveView:
    """The page's server, a thread of this process; a context manager that always stops it."""

    def __init__(self, port: int) -> None:
        """Bind now (before anything of the run starts): a port in use is a usage error."""
        self.state = LiveState()
        bound = preflight.bind(LIVE_HOST, port, "--live-port", "--live-host")
        self.server = ThreadingHTTPServer(bound.getsockname()[:2], _Handler, False)
        self.server.socket.close()
        self.server.socket = bound
        self.server.server_address = bound.getsockname()[:2]
        self.server.live = self.state  # type: ignore[attr-defined]
        self.server.last_poll = 0.0  # type: ignore[attr-defined]
        self.server.polled = threading.Event()  # type: ignore[attr-defined]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def __enter__(self) -> LiveView:
        self.server.server_activate()
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_S},
            name="pairbench-live-view",
            daemon=True,  # never keeps pairbench alive on its own
        )
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        finished = kind is None
        with self.state.lock:
            self.state.ended = "finished" if finished else "stopped"
        recent = time.monotonic() - self.server.last_poll < RECENT_POLL_S  # type: ignore[attr-defined]
        if finished and recent:
            # An open page gets the final state on its next poll; Ctrl-C does not wait.
            self.server.polled.clear()  # type: ignore[attr-defined]
            self.server.polled.wait(LINGER_S)  # type: ignore[attr-defined]
        self.close()

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join()
            self.thread = None
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    """`/`: the page; `/state.json`: what it draws. Nothing else, and no access log."""

    server_version = "pairbench-live"
    timeout = 10  # seconds: a client that connects and sends nothing does not hold a thread

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/state.json":
            state = self.server.live.snapshot()  # type: ignore[attr-defined]
            self.server.last_poll = time.monotonic()  # type: ignore[attr-defined]
            self.server.polled.set()  # type: ignore[attr-defined]
            self._send(200, "application/json", json.dumps(state).encode("utf-8"))
        elif path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE.encode("utf-8"))
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the run's own output is the terminal's."""


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pairbench live</title>
<style>
:root { --bad: #c62828; --good: #1565c0; }
body { font: 18px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: #1a1a1a; margin: 0; padding: 1.2em 2em; background: #fafafa; }
header { display: flex; justify-content: space-between; align-items: baseline; gap: 1em; }
h1 { font-size: 1.5em; margin: 0; }
#status { font-size: 1.1em; color: #424242; }
#now { font-size: 2.2em; font-weight: 650; margin: .4em 0 .1em; min-height: 1.3em; }
#now .variant { color: var(--good); }
#trial { font-size: 1.3em; color: #424242; }
.bar { height: 14px; background: #e0e0e0; border-radius: 7px; margin: .5em 0 1em; overflow: hidden; }
.bar div { height: 100%; width: 0; background: var(--good); transition: width .5s; }
#pairs { display: flex; flex-wrap: wrap; gap: 1.2em; }
.pair { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: .6em 1em;
        flex: 1 1 640px; max-width: 980px; }
.pair h2 { font-size: 1.25em; margin: 0 0 .2em; }
.pair.running { border-color: var(--good); box-shadow: 0 0 0 2px #bbdefb; }
.pair .meta { color: #616161; font-size: .9em; }
svg.curve { width: 100%; height: auto; }
svg.curve text { font: 15px system-ui, "DejaVu Sans", sans-serif; fill: #424242; }
svg.curve .axis { stroke: #9e9e9e; }
svg.curve .grid { stroke: #eeeeee; }
.legend span { margin-right: 1.1em; white-space: nowrap; }
.legend i { display: inline-block; width: .9em; height: .9em; border-radius: 50%;
            vertical-align: -.08em; margin-right: .3em; }
#messages { color: #616161; font-size: .9em; margin-top: 1em; white-space: pre-wrap; }
footer { color: #9e9e9e; font-size: .8em; margin-top: .6em; }
</style>
</head>
<body>
<header><h1 id="title">pairbench live</h1><div id="status">connecting…</div></header>
<div id="now"></div>
<div id="trial"></div>
<div class="bar"><div id="done"></div></div>
<div id="pairs"></div>
<div id="messages"></div>
<footer id="cost"></footer>
<script>
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var W = 900, H = 360, L = 80, R = 20, T = 16, B = 56;
  var timer = null, last = null;
  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) { node.setAttribute(key, attrs[key]); }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmt(v) {
    if (v >= 100) { return v.toFixed(0); }
    if (v >= 10) { return v.toFixed(1); }
    return v.toPrecision(2);
  }
  function scale(values, log, from, to) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var f = log && lo > 0 ? Math.log : function (x) { return x; };
    var a = f(lo), b = f(hi);
    if (a === b) { a -= 1; b += 1; }
    return function (x) { return from + (f(x) - a) / (b - a) * (to - from); };
  }
  function curve(pair, now) {
    var svg = el("svg", {"class": "curve", viewBox: "0 0 " + W + " " + H});
    var xs = pair.knob.values.slice(), ys = [];
    pair.variants.forEach(function (v) {
      (pair.points[v.name] || []).forEach(function (p) { xs.push(p.knob); ys.push(p.ms); });
    });
    if (!xs.length) { return svg; }
    var logX = pair.knob.log_scale && Math.min.apply(null, xs) > 0;
    var x = scale(xs, logX, L, W - R);
    var y = ys.length ? scale(ys.concat([Math.min.apply(null, ys) / 1.5,
                                         Math.max.apply(null, ys) * 1.5]), true, H - B, T) : null;
    el("line", {"class": "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}, svg);
    el("line", {"class": "axis", x1: L, y1: T, x2: L, y2: H - B}, svg);
    pair.knob.values.forEach(function (k) {
      el("line", {"class": "grid", x1: x(k), y1: T, x2: x(k), y2: H - B}, svg);
      el("text", {x: x(k), y: H - B + 22, "text-anchor": "middle"}, svg, String(k));
    });
    el("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"}, svg,
       pair.knob.label + (pair.knob.unit ? " (" + pair.knob.unit + ")" : ""));
    el("text", {x: 16, y: (T + H - B) / 2, "text-anchor": "middle",
                transform: "rotate(-90 16 " + (T + H - B) / 2 + ")"}, svg, pair.metric);
    if (now && now.pair === pair.name && !isNaN(parseFloat(now.value))) {
      // The knob value being measured now: where the next points land.
      var at = x(parseFloat(now.value));
      el("line", {"class": "measuring", x1: at, y1: T, x2: at, y2: H - B, stroke: "#90caf9",
                  "stroke-width": 6, "stroke-dasharray": "10 6"}, svg);
    }
    if (y) {
      var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
      [lo, Math.sqrt(lo * hi), hi].forEach(function (v) {
        el("line", {"class": "grid", x1: L, y1: y(v), x2: W - R, y2: y(v)}, svg);
        el("text", {x: L - 8, y: y(v) + 5, "text-anchor": "end"}, svg, fmt(v));
      });
    }
    pair.variants.forEach(function (v) {
      var points = pair.points[v.name] || [];
      if (points.length > 1) {
        el("polyline", {fill: "none", stroke: v.colour, "stroke-width": 3,
                        points: points.map(function (p) { return x(p.knob) + "," + y(p.ms); }).join(" ")}, svg);
      }
      points.forEach(function (p) {
        var dot = el("circle", {"class": "point", cx: x(p.knob), cy: y(p.ms), r: 7,
                                fill: v.colour, "data-variant": v.name, "data-knob": p.knob}, svg);
        el("title", {}, dot, v.name + " at " + pair.knob.name + "=" + p.knob + ": " +
           fmt(p.ms) + " ms (" + p.rounds + " round" + (p.rounds === 1 ? "" : "s") + ")");
      });
    });
    return svg;
  }
  function render(state) {
    var run = state.run || {}, now = state.now;
    document.getElementById("title").textContent = run.run_id ? "pairbench live: " + run.run_id : "pairbench live";
    var status = state.ended ? "run " + state.ended : (run.status || "starting");
    document.getElementById("status").textContent = status + " · " + state.elapsed_s.toFixed(0) + " s";
    var nowNode = document.getElementById("now");
    nowNode.textContent = "";
    if (state.ended) {
      nowNode.textContent = "run " + (run.status || state.ended) + ": " + state.started + " trials";
    } else if (now && now.pair) {
      nowNode.appendChild(document.createTextNode(now.pair + " · " + now.knob + "=" + now.value +
        " · round " + now.round + (now.adaptive ? " (of at most " : " of ") + now.rounds +
        (now.adaptive ? ")" : "") + " · "));
      var variant = document.createElement("span");
      variant.className = "variant";
      variant.textContent = now.variant;
      (run.pairs || []).forEach(function (pair) {  // the variant in its figures' colour
        pair.variants.forEach(function (v) {
          if (pair.name === now.pair && now.variant.split(" (")[0] === v.name) {
            variant.style.color = v.colour;
          }
        });
      });
      nowNode.appendChild(variant);
    } else if (now) {
      nowNode.textContent = now.text;
    }
    var total = state.total;
    document.getElementById("trial").textContent = state.started ?
      "trial " + state.started + (total ? " of " + (now && now.adaptive ? "at most " : "") + total : "") :
      "no trial yet";
    document.getElementById("done").style.width = total ? Math.min(100, 100 * state.started / total) + "%" : "0";
    var pairs = document.getElementById("pairs");
    pairs.textContent = "";
    (run.pairs || []).forEach(function (pair) {
      var box = document.createElement("section");
      box.className = "pair" + (now && now.pair === pair.name && !state.ended ? " running" : "");
      box.setAttribute("data-pair", pair.name);
      var h = document.createElement("h2");
      h.textContent = pair.title + " (" + pair.name + ")";
      box.appendChild(h);
      var meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = pair.trials + (pair.trials === 1 ? " trial stored" : " trials stored") +
        (pair.invalid ? ", " + pair.invalid + " invalid (left out)" : "") +
        (pair.verified === false ? " · verification FAILED" : "");
      box.appendChild(meta);
      box.appendChild(curve(pair, state.ended ? null : now));
      var legend = document.createElement("div");
      legend.className = "legend";
      pair.variants.forEach(function (v) {
        var item = document.createElement("span");
        var dot = document.createElement("i");
        dot.style.background = v.colour;
        item.appendChild(dot);
        item.appendChild(document.createTextNode(v.name + " (" + v.role + ")"));
        legend.appendChild(item);
      });
      box.appendChild(legend);
      pairs.appendChild(box);
    });
    document.getElementById("messages").textContent = state.messages.join("\\n");
    document.getElementById("cost").textContent = state.refresh_ms === null ? "" :
      "this view's last read of run.json took " + state.refresh_ms + " ms, in pairbench's own process";
  }
  function poll() {
    fetch("state.json", {cache: "no-store"}).then(function (reply) {
      if (!reply.ok) { throw new Error(reply.status); }
      return reply.json();
    }).then(function (state) {
      last = state;
      render(state);
      timer = state.ended ? null : setTimeout(poll, state.poll_ms);
      if (state.ended) { document.getElementById("status").textContent += " · this page no longer updates"; }
    }).catch(function () {
      document.getElementById("status").textContent = last ?
        "the run has ended; this page no longer updates" : "no answer from pairbench";
      timer = null;
    });
  }
  poll();
})();
</script>
</body>
</html>
"""
